"""Peer: PyTorch ``generate`` on the dense checkpoint (what a training notebook would run)."""

from __future__ import annotations

import time

from .base import Peer

__all__ = ["PyTorchPeer", "make"]


class PyTorchPeer(Peer):
    def __init__(self, target, threads, beam, language):
        import torch

        from ..training.architecture import load_checkpoint

        torch.set_num_threads(threads)
        self.torch = torch
        self.model, self.processor = load_checkpoint(target)
        self.beam, self.language = beam, language
        self.frames = 2 * self.model.config.max_source_positions

    def _encode(self, feats):
        return self.model.model.encoder(feats)

    def _window(self, chunk, n):
        feats = self.processor.feature_extractor(chunk, sampling_rate=16000, return_tensors="pt", padding="max_length",
                                                 max_length=n).input_features
        with self.torch.inference_mode():
            t0 = time.perf_counter()
            enc = self._encode(feats)
            t1 = time.perf_counter()
            out = self.model.generate(encoder_outputs=enc, language=self.language, task="transcribe",
                                      num_beams=self.beam, do_sample=False, max_new_tokens=self.max_new_tokens)
            t2 = time.perf_counter()
        ids = out[0].tolist()
        return self.processor.decode(ids, skip_special_tokens=True).strip(), t1 - t0, t2 - t1, len(ids)


def make(target, *, threads, beam, language):
    return PyTorchPeer(target, threads, beam, language)
