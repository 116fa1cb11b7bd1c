"""Peer: whisper.cpp through pywhispercpp (its wheels bundle libwhisper; the model is a local file, nothing is
downloaded). ``prepare`` writes the dense checkpoint as whisper.cpp's ggml file with our own writer
(exporter/ggml.py): q8_0 (whisper.cpp's usual CPU choice) or f16. A pruned checkpoint is refused there: whisper.cpp
needs uniform heads and FFN width.

Decoding is made to match ours: greedy (or the bench's beam), no temperature fallback, no timestamps, no context
from the previous window, one segment per window, the bench's language. pywhispercpp exposes no per-stage timings,
so this peer reports the end-to-end time only (encoder and decoder columns: —)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import Peer

__all__ = ["WhisperCppPeer", "make", "prepare"]


class WhisperCppPeer(Peer):
    def __init__(self, target, threads, beam, language):
        from pywhispercpp.model import Model

        from ..exporter.ggml import read_ggml_header

        path = Path(target)
        if not path.is_file():
            raise FileNotFoundError(f"whisper.cpp peer: no ggml model file at {target} (bench --model DIR writes one)")
        hp = read_ggml_header(path)
        self.frames = 2 * hp["n_audio_ctx"]
        strategy = 1 if beam > 1 else 0  # whisper.cpp's WHISPER_SAMPLING_BEAM_SEARCH / _GREEDY
        self.model = Model(str(path), params_sampling_strategy=strategy, redirect_whispercpp_logs_to=None,
                           n_threads=threads, language=language, translate=False, no_context=True, no_timestamps=True,
                           single_segment=True, print_progress=False, print_realtime=False, temperature=0.0,
                           temperature_inc=0.0, beam_search={"beam_size": beam, "patience": -1.0},
                           greedy={"best_of": 1})

    def _window(self, chunk, n):
        segs = self.model.transcribe(np.ascontiguousarray(chunk, dtype=np.float32), max_tokens=self.max_new_tokens)
        return " ".join(s.text.strip() for s in segs).strip(), None, None, 0


def make(target, *, threads, beam, language):
    return WhisperCppPeer(target, threads, beam, language)


def prepare(model_dir, out: Path, ftype: str = "q8_0") -> Path:
    """``model_dir`` written as ``out/ggml-model-<ftype>.bin`` (made once, reused)."""
    from ..exporter.ggml import write_ggml

    path = Path(out) / f"ggml-model-{ftype}.bin"
    if not path.is_file():
        write_ggml(model_dir, path, ftype=ftype)
    return path
