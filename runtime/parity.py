"""Parity of one bundle on two machines: the tokens it decodes here and there, and the WER difference.

``record`` decodes clips with a bundle (greedy, one 30-s-or-less window per clip, no guards: what the export's
own token check compares) and keeps every clip's tokens with the machine it ran on; ``compare`` reads two such
records of the same bundle and clips: an fp32 bundle must give identical tokens (the same graph and float
arithmetic, up to kernel order), a quantized one may differ (arm64 and x86 int8 kernels round differently) but its
WER must stay within ``max_wer_diff`` points, reported with a paired bootstrap 95 % interval. Torch-free: it runs
inside the arm64 root of ``scripts/arm64-check.sh``.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

from .bench import load_clips
from .fsutil import atomic_write_json
from .metrics import NORMALIZERS, error_rates, paired_bootstrap, utterance_errors
from .transcribe import DecodeOptions, Transcriber

__all__ = ["record", "compare"]

FLOAT_MODES = ("none", "fp16")


def record(bundle: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike, *, limit: int | None = None,
           threads: int | None = None) -> dict:
    """Decode ``limit`` clips of the audiofolder ``data`` with ``bundle``; write and return the record."""
    import onnxruntime

    clips = load_clips(data, limit=limit)
    t = Transcriber(bundle, threads=threads)
    opts = DecodeOptions(temperatures=(0.0,), repetition_guard=4)
    rows = []
    for c in clips:
        text, tokens = t.transcribe(c["audio"], options=opts, return_tokens=True)
        rows.append({"id": c["id"], "sentence": c["sentence"], "text": text, "tokens": [list(map(int, s)) for s in tokens]})
    rec = {"bundle": str(bundle), "files_sha256": {k: f["sha256"] for k, f in t.manifest["files"].items()},
           "quantization": t.manifest.get("quantization"), "machine": platform.machine(),
           "python": platform.python_version(), "onnxruntime": onnxruntime.__version__, "clips": rows}
    atomic_write_json(out, rec)
    return rec


def compare(reference: dict, other: dict, *, max_wer_diff: float = 0.5) -> dict:
    """Tokens identical (fp32) or WER within ``max_wer_diff`` (quantized) of ``other`` against ``reference``."""
    ref_ids = [c["id"] for c in reference["clips"]]
    if ref_ids != [c["id"] for c in other["clips"]]:
        raise ValueError("the two records hold different clips; record both from the same --data and --limit")
    if reference.get("files_sha256") != other.get("files_sha256"):
        raise ValueError("the two records come from different bundles (the manifests' file checksums differ)")
    same = [a["tokens"] == b["tokens"] for a, b in zip(reference["clips"], other["clips"])]
    refs = [c["sentence"] for c in reference["clips"]]
    hyp_a, hyp_b = [c["text"] for c in reference["clips"]], [c["text"] for c in other["clips"]]
    norm = NORMALIZERS["hindi"]
    wer_a, wer_b = error_rates(refs, hyp_a, norm)["wer"], error_rates(refs, hyp_b, norm)["wer"]
    ci = paired_bootstrap(utterance_errors(refs, hyp_a, norm), utterance_errors(refs, hyp_b, norm))
    exact = reference.get("quantization") in FLOAT_MODES
    diff = wer_b - wer_a
    passed = all(same) if exact else diff <= max_wer_diff
    return {"quantization": reference.get("quantization"), "machines": [reference["machine"], other["machine"]],
            "onnxruntime": [reference.get("onnxruntime"), other.get("onnxruntime")], "clips": len(same),
            "identical_tokens": sum(same), "wer": [wer_a, wer_b], "wer_diff": diff, "wer_diff_ci": ci,
            "rule": "tokens identical" if exact else f"WER within +{max_wer_diff}", "passed": passed,
            "differing": [c["id"] for c, s in zip(reference["clips"], same) if not s]}


def compare_files(reference: str | os.PathLike, other: str | os.PathLike, out: str | os.PathLike | None = None, *,
                  max_wer_diff: float = 0.5) -> dict:
    import json

    res = compare(json.loads(Path(reference).read_text()), json.loads(Path(other).read_text()), max_wer_diff=max_wer_diff)
    if out:
        atomic_write_json(out, res)
    return res
