"""Peer: the dense model exported by optimum-onnx, run by ``ORTModelForSpeechSeq2Seq`` (what users would
otherwise ship). ``prepare`` makes the export from the dense checkpoint."""

from __future__ import annotations

from pathlib import Path

from .pytorch import PyTorchPeer

__all__ = ["OptimumPeer", "make", "prepare"]


class OptimumPeer(PyTorchPeer):
    def __init__(self, target, threads, beam, language):
        import onnxruntime as ort
        import torch
        from optimum.onnxruntime import ORTModelForSpeechSeq2Seq
        from transformers import WhisperProcessor

        torch.set_num_threads(threads)
        self.torch = torch
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        self.model = ORTModelForSpeechSeq2Seq.from_pretrained(target, session_options=so, provider="CPUExecutionProvider")
        self.processor = WhisperProcessor.from_pretrained(target)
        self.beam, self.language = beam, language
        self.frames = 2 * self.model.config.max_source_positions

    def _encode(self, feats):
        mask = self.torch.ones(feats.shape[0], feats.shape[-1], dtype=self.torch.long)
        return self.model.encoder(input_features=feats, attention_mask=mask)


def make(target, *, threads, beam, language):
    return OptimumPeer(target, threads, beam, language)


def prepare(model_dir, out: Path) -> Path:
    """The optimum export of ``model_dir`` in ``out`` (made once, reused)."""
    if not (out / "encoder_model.onnx").is_file():
        from ..exporter.baseline import export_optimum

        export_optimum(model_dir, out)
    return out
