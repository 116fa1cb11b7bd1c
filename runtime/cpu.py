"""What this CPU's int8 kernels do, and the session setting that keeps them exact.

ONNX Runtime computes a dynamic-int8 MatMul (uint8 activations × int8 weights, "u8s8") on an x86 CPU without VNNI
(AVX2, AVX-512 without VNNI, SSE4.1) with VPMADDUBSW, which adds two uint8 × int8 products into a signed 16-bit lane:
255 · 127 · 2 = 64,770 does not fit, and the sum saturates at 32,767 once the weights use all 8 bits, as the bundles'
symmetric per-channel int8 weights do (7-bit weights, quantize_dynamic's ``reduce_range``, stay below the limit).
The session setting ``session.x64quantprecision = 1`` makes ONNX Runtime convert such MatMuls to uint8 × uint8 on
those CPUs, which is exact; on a CPU with VNNI (VPDPBUSD adds in 32 bits) and on ARM it changes nothing.
Measured on an AVX2-only EPYC (docs/bench.md, "int8 on a CPU without VNNI").
"""
from __future__ import annotations

import platform

__all__ = ["cpu_flags", "int8_kernel", "exact_int8", "EXACT_INT8_ENTRY"]

EXACT_INT8_ENTRY = ("session.x64quantprecision", "1")


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (Linux; empty where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            line = next((x for x in f if x.startswith(("flags", "Features"))), "")
    except OSError:
        return set()
    return set(line.partition(":")[2].split())


def int8_kernel(flags: set[str] | None = None, machine: str | None = None) -> str:
    """Which u8s8 int8 kernel ONNX Runtime uses here: ``vnni`` (32-bit sums, exact), ``u8s8-saturating`` (x86 without
    VNNI: 16-bit pair sums that saturate; ``exact_int8`` avoids it), ``arm`` (exact), or ``unknown``."""
    machine = (machine or platform.machine()).lower()
    if machine in ("aarch64", "arm64") or machine.startswith("arm"):
        return "arm"
    flags = cpu_flags() if flags is None else flags
    if not flags or machine not in ("x86_64", "amd64", "i686", "x86"):
        return "unknown"
    if flags & {"avx512_vnni", "avx_vnni", "amx_int8"}:
        return "vnni"
    return "u8s8-saturating" if flags & {"avx2", "sse4_1", "avx512bw"} else "unknown"


def exact_int8(so) -> None:
    """Set ``session.x64quantprecision`` on onnxruntime SessionOptions ``so`` (see the module's text)."""
    so.add_session_config_entry(*EXACT_INT8_ENTRY)
