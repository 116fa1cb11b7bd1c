"""Peer backends for the bench (each runs in its own worker process): PyTorch generate, optimum's
ORTModelForSpeechSeq2Seq, and CTranslate2 int8 (faster-whisper's engine). Each returns the text
and its encoder / decoder split so the table compares like with like."""

from __future__ import annotations

import time

import numpy as np

__all__ = ["make_peer"]


class _Peer:
    """Cuts the audio into the model's windows and adds up each window's text, encoder and decoder time."""

    frames: int
    max_new_tokens: int = 200

    def _window(self, chunk, n: int) -> tuple[str, float, float, int]:
        raise NotImplementedError

    def transcribe(self, wav):
        n = self.frames * 160
        texts, enc_s, dec_s, tokens, windows = [], 0.0, 0.0, 0, 0
        for start in range(0, len(wav), n):
            text, e, d, t = self._window(wav[start:start + n], n)
            texts.append(text)
            enc_s, dec_s, tokens, windows = enc_s + e, dec_s + d, tokens + t, windows + 1
        return " ".join(texts), {"encoder_s": enc_s, "decoder_s": dec_s, "tokens": tokens, "windows": windows}


class _PyTorch(_Peer):
    def __init__(self, target, threads, beam, language):
        import torch

        from .training.architecture import load_checkpoint

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


class _Optimum(_PyTorch):
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


class _CTranslate2(_Peer):
    def __init__(self, target, threads, beam, language):
        import ctranslate2
        from tokenizers import Tokenizer

        from .runtime.bundled import bundled_ct2_dir

        path = bundled_ct2_dir() if target in ("bundled-base", "") else target
        self.model = ctranslate2.models.Whisper(str(path), device="cpu", compute_type="int8", intra_threads=threads)
        self.tok = Tokenizer.from_file(str(f"{path}/tokenizer.json"))
        self.ct2 = ctranslate2
        self.beam = beam
        self.prompt = [self.tok.token_to_id(t) for t in ("<|startoftranscript|>", f"<|{language}|>", "<|transcribe|>", "<|notimestamps|>")]
        import json
        from pathlib import Path

        pp = Path(path) / "preprocessor_config.json"  # its window (a trimmed audio context has fewer frames)
        self.frames = int(json.loads(pp.read_text()).get("nb_max_frames", 3000)) if pp.is_file() else 3000

    def _window(self, chunk, n):
        from .runtime.features import log_mel

        sv = self.ct2.StorageView.from_array(np.ascontiguousarray(log_mel(chunk, n_samples=n)[None]))
        t0 = time.perf_counter()
        enc = self.model.encode(sv, to_cpu=False)
        t1 = time.perf_counter()
        res = self.model.generate(enc, [self.prompt], beam_size=self.beam, max_length=self.max_new_tokens)
        t2 = time.perf_counter()
        ids = res[0].sequences_ids[0]
        return self.tok.decode(ids, skip_special_tokens=True).strip(), t1 - t0, t2 - t1, len(ids)


def make_peer(backend: str, target: str, *, threads: int, beam: int, language: str, max_new_tokens: int = 200):
    cls = {"pytorch": _PyTorch, "optimum": _Optimum, "ctranslate2": _CTranslate2}.get(backend)
    if cls is None:
        raise ValueError(f"unknown bench backend {backend!r}; choose ours, pytorch, optimum or ctranslate2")
    peer = cls(target, threads, beam, language)
    peer.max_new_tokens = max_new_tokens
    return peer
