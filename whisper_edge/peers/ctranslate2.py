"""Peer: CTranslate2 int8, faster-whisper's engine. ``prepare`` converts the dense checkpoint; without one the
bundled Whisper-base runs as it ships."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .base import Peer

__all__ = ["CTranslate2Peer", "make", "prepare"]


class CTranslate2Peer(Peer):
    def __init__(self, target, threads, beam, language):
        import ctranslate2
        from tokenizers import Tokenizer

        from ..runtime.bundled import bundled_ct2_dir

        path = bundled_ct2_dir() if target in ("bundled-base", "") else target
        self.model = ctranslate2.models.Whisper(str(path), device="cpu", compute_type="int8", intra_threads=threads)
        self.tok = Tokenizer.from_file(str(f"{path}/tokenizer.json"))
        self.ct2 = ctranslate2
        self.beam = beam
        self.prompt = [self.tok.token_to_id(t) for t in ("<|startoftranscript|>", f"<|{language}|>", "<|transcribe|>", "<|notimestamps|>")]
        import json

        pp = Path(path) / "preprocessor_config.json"  # its window (a trimmed audio context has fewer frames)
        self.frames = int(json.loads(pp.read_text()).get("nb_max_frames", 3000)) if pp.is_file() else 3000

    def _window(self, chunk, n):
        from ..runtime.features import log_mel

        sv = self.ct2.StorageView.from_array(np.ascontiguousarray(log_mel(chunk, n_samples=n)[None]))
        t0 = time.perf_counter()
        enc = self.model.encode(sv, to_cpu=False)
        t1 = time.perf_counter()
        res = self.model.generate(enc, [self.prompt], beam_size=self.beam, max_length=self.max_new_tokens)
        t2 = time.perf_counter()
        ids = res[0].sequences_ids[0]
        return self.tok.decode(ids, skip_special_tokens=True).strip(), t1 - t0, t2 - t1, len(ids)


def make(target, *, threads, beam, language):
    return CTranslate2Peer(target, threads, beam, language)


def prepare(model_dir, out: Path) -> Path:
    """``model_dir`` converted to CTranslate2 int8 in ``out`` (made once, reused)."""
    if not (out / "model.bin").is_file():
        from ..exporter.baseline import export_ctranslate2

        export_ctranslate2(model_dir, out)
    return out
