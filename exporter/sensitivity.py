"""Which of the encoder's weight matrices cost accuracy in dynamic int8 — the scan behind mixed precision.

The encoder graph's weight MatMuls are grouped by layer and role (q/k/v, out_proj, fc1, fc2; the decoder's
cross-attention K/V projections that the encoder graph computes form one group). For each group, the encoder is
quantized *except* that group, run on calibration mels, and its outputs (the cross-attention keys and values every
decoder layer reads) compared with fp32: the relative error that remains when the group stays fp32. The groups whose
exclusion lowers the error most are the ones int8 hurts; ``export --int8-encoder --encoder-fp32 K`` keeps the K worst
in fp32 and quantizes the rest (docs/export.md).
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["weight_groups", "scan_encoder", "relative_error"]

_ROLE = re.compile(r"/(q_proj|k_proj|v_proj|out_proj|fc1|fc2)(?:_\d+)?/MatMul$")


def weight_groups(path: Path) -> dict[str, list[str]]:
    """label → MatMul node names with a constant weight, in graph order ('L0.qkv', 'L0.out', 'L0.fc1', 'L0.fc2', …,
    'cross'). Layers are counted by their fc2 (each encoder layer ends with it); what follows the last fc2 is the
    decoder's cross K/V."""
    import onnx

    g = onnx.load(str(path), load_external_data=False).graph
    weights = {t.name for t in g.initializer}
    nodes = [n for n in g.node if n.op_type == "MatMul" and n.input[1] in weights]
    n_fc2 = sum(1 for n in nodes if (m := _ROLE.search(n.name)) and m.group(1) == "fc2")
    groups: dict[str, list[str]] = {}
    layer = 0
    for n in nodes:
        m = _ROLE.search(n.name)
        role = m.group(1) if m else "other"
        if layer >= n_fc2:
            label = "cross"
        else:
            label = f"L{layer}." + {"q_proj": "qkv", "k_proj": "qkv", "v_proj": "qkv", "out_proj": "out"}.get(role, role)
        groups.setdefault(label, []).append(n.name)
        if role == "fc2" and layer < n_fc2:
            layer += 1
    return groups


def relative_error(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    """‖a − b‖ / ‖b‖ over every output, pooled."""
    num = sum(float(np.sum((x - y) ** 2)) for x, y in zip(a, b))
    den = sum(float(np.sum(y ** 2)) for y in b)
    return float(np.sqrt(num / max(den, 1e-30)))


def _run(path: Path, mels: list[np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    from ..runtime.cpu import exact_int8

    so = ort.SessionOptions()
    so.log_severity_level = 3
    exact_int8(so)  # as the runtime runs it (runtime/cpu.py)
    s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    name = s.get_inputs()[0].name
    return [o for m in mels for o in s.run(None, {name: np.asarray(m, np.float32)[None]})]


def scan_encoder(fp32: Path, mels: list[np.ndarray], quantize, groups: dict[str, list[str]] | None = None) -> list[dict]:
    """``quantize(src, dst, exclude)`` writes an int8 copy of ``src`` leaving the node names in ``exclude`` float;
    ``groups``: ``weight_groups(fp32)`` when the caller has it already.
    Returns one row per group, most harmful first: the error with every group quantized (``all``), and per group
    the error when that group alone stays fp32 and how much that lowers it (``gain``)."""
    groups = groups if groups is not None else weight_groups(fp32)
    ref = _run(fp32, mels)
    rows = []
    with tempfile.TemporaryDirectory(prefix="whisper-edge-scan-") as d:
        q = Path(d) / "q.onnx"
        quantize(fp32, q, ())
        base = relative_error(_run(q, mels), ref)
        for label, names in groups.items():
            quantize(fp32, q, tuple(names))
            err = relative_error(_run(q, mels), ref)
            rows.append({"group": label, "matmuls": len(names), "error_all_int8": round(base, 5),
                         "error_group_fp32": round(err, 5), "gain": round(base - err, 5)})
    return sorted(rows, key=lambda r: -r["gain"])
