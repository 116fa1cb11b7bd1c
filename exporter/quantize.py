"""Quantization modes: one registry entry each — how it is made, which graphs and ops it touches, its tolerance
against PyTorch and why. ``export --quantize NAME`` offers exactly these; a bundle records the name in its manifest
(runtime/manifest.py ``QUANTIZATIONS`` lists what a runtime accepts; a test keeps the two in step).

Adding a mode (say weight-only 4-bit MatMulNBits, issue 14) is one ``QuantMode`` entry with its ``apply``.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["QuantMode", "MODES", "quantize_graphs"]


@dataclass(frozen=True)
class QuantMode:
    name: str
    tolerance: dict  # max |ONNX − PyTorch| per output family: cross (encoder K/V), logits, cache
    why: str  # why that tolerance (shown in docs/export.md)
    ops: tuple[str, ...] = ()  # the ONNX op types it rewrites
    apply: Callable[[Path, Path], None] | None = None  # one graph file src → dst
    encoder_by_default: bool = True  # False: the encoder stays fp32 unless asked (--int8-encoder)
    extra: dict = field(default_factory=dict)


def _int8_dynamic(src: Path, dst: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel int8 weights of the MatMul/Gather ops (the per-token cost and most of the bytes: the embedding
    # table); convolutions and LayerNorms stay fp32 (naive int8 of every op broke Hindi, ../shared/SOURCES.md).
    quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul", "Gemm", "Gather"], extra_options={"MatMulConstBOnly": True})


def _fp16(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save_model(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, disable_shape_infer=False), str(dst))


MODES: dict[str, QuantMode] = {
    "none": QuantMode("none", {"cross": 2e-3, "logits": 2e-3, "cache": 2e-3},
                      "fp32 ONNX against fp32 PyTorch: only operator-order rounding differs"),
    "fp16": QuantMode("fp16", {"cross": 5e-2, "logits": 1.5e-1, "cache": 5e-2},
                      "fp16 weights and activations carry 11 bits of mantissa; inputs and outputs stay fp32",
                      ops=("*",), apply=_fp16),
    "int8": QuantMode("int8", {"cross": 1.0, "logits": 4.0, "cache": 1.0},
                      "dynamic int8 activations move tensors by up to about 1 without changing the text: int8 is judged "
                      "by WER against fp32 on validation clips (--data), the tensor bound only catches breakage",
                      ops=("MatMul", "Gemm", "Gather"), apply=_int8_dynamic, encoder_by_default=False),
}


def quantize_graphs(folder: Path, mode: str, *, encoder: bool | None = None) -> list[str]:
    """Rewrite the bundle's graphs in place with ``mode``; returns the files changed. ``encoder`` overrides the
    mode's default for the encoder graph (``--int8-encoder``)."""
    m = MODES[mode]
    if m.apply is None:
        return []
    with_encoder = m.encoder_by_default if encoder is None or not encoder else True
    files = ("encoder.onnx", "decoder.onnx") if with_encoder else ("decoder.onnx",)
    for f in files:
        src, dst = folder / f, folder / f"{f}.q"
        m.apply(src, dst)
        os.replace(dst, src)
    return list(files)
