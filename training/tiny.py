"""A tiny random-initialized Whisper with the real tokenizer and feature extractor, for tests and dry runs."""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["tiny_whisper"]


def tiny_whisper(processor_dir: str | Path, out: str | Path, *, d_model: int = 128, heads: int = 2, ffn: int = 256,
                 encoder_layers: int = 2, decoder_layers: int = 2, audio_ctx: int = 1500, seed: int = 0, overwrite: bool = False) -> Path:
    """Write a random Whisper (head width 64 like the real ones) that shares the processor of ``processor_dir``.

    The vocabulary, special tokens and generation config are the real ones, so every stage runs on it
    exactly as on Whisper-base, only faster.
    """
    from transformers import GenerationConfig, WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor

    from .architecture import save_checkpoint

    src = WhisperConfig.from_pretrained(processor_dir)
    cfg = WhisperConfig(
        vocab_size=src.vocab_size, num_mel_bins=src.num_mel_bins, d_model=d_model,
        encoder_layers=encoder_layers, decoder_layers=decoder_layers,
        encoder_attention_heads=heads, decoder_attention_heads=heads,
        encoder_ffn_dim=ffn, decoder_ffn_dim=ffn, max_source_positions=audio_ctx,
        max_target_positions=src.max_target_positions, decoder_start_token_id=src.decoder_start_token_id,
        pad_token_id=src.pad_token_id, bos_token_id=src.bos_token_id, eos_token_id=src.eos_token_id,
        suppress_tokens=src.suppress_tokens, begin_suppress_tokens=src.begin_suppress_tokens,
        tie_word_embeddings=True,
    )
    cfg.whisper_edge = {"provenance": {"source": "random-tiny", "seed": seed}}
    torch.manual_seed(seed)
    model = WhisperForConditionalGeneration(cfg).eval()
    processor = WhisperProcessor.from_pretrained(processor_dir)
    gen = GenerationConfig.from_pretrained(processor_dir)
    gen.alignment_heads = [[0, 0]]
    model.generation_config = gen
    return save_checkpoint(model, processor, out, generation_config=gen, overwrite=overwrite)
