"""The dynamic audio context in training: a share of the batches is encoded in a window sized to its clips (the
runtime's rule, ``runtime.features.dynamic_ctx``: the longest clip plus a margin, rounded up to a block) instead
of the full window, so that the model learns to transcribe from the shorter windows the runtime then uses.

Stock Whisper loses accuracy on a shortened window (whisper.cpp's ``--audio-ctx`` is untrained); FUTO's
whisper-acft fine-tune (random context lengths) kept WER within about a point. Recipe field ``dynamic_ctx``
(share of batches); the model's config records the rule (``whisper_edge.dynamic_ctx``), the exporter copies it to
the bundle manifest, and the runtime then sizes each window by default (docs/export.md, "Dynamic audio context").
"""

from __future__ import annotations

import zlib

import numpy as np

from ..runtime.features import DYNAMIC_BLOCK, DYNAMIC_MARGIN, FRAMES_PER_POSITION, dynamic_ctx

__all__ = ["allow_short_windows", "batch_positions", "mark_dynamic", "trained_dynamic", "INHERITED_SHARE"]

INHERITED_SHARE = 0.5  # a later stage (SGL, pruning recovery) of a model trained for it, when its recipe leaves dynamic_ctx unset


def allow_short_windows(model) -> None:
    """Let the Hugging Face encoder take fewer mel frames than its audio context: it requires exactly
    2 × max_source_positions frames and adds every positional embedding, so for a shorter input both are narrowed
    for the duration of the call (the first positions of the same table: what the exported graph does)."""
    enc = model.model.encoder
    if getattr(enc, "_short_windows", False):
        return
    full_forward, full = enc.forward, enc.embed_positions.weight.shape[0]

    def forward(input_features, *args, **kwargs):
        positions = input_features.shape[-1] // FRAMES_PER_POSITION
        if positions >= full:
            return full_forward(input_features, *args, **kwargs)
        cfg, emb = enc.config, enc.embed_positions
        saved = cfg.max_source_positions, emb.num_embeddings
        cfg.max_source_positions = emb.num_embeddings = positions
        try:
            return full_forward(input_features, *args, **kwargs)
        finally:
            cfg.max_source_positions, emb.num_embeddings = saved

    enc.forward = forward
    enc._short_windows = True


def batch_positions(lengths: list[int], texts: list[str], audio_ctx: int, share: float, seed: int) -> int:
    """Encoder positions for one training batch: with probability ``share`` the runtime's window for its longest
    clip, else the full ``audio_ctx``. The draw is keyed by the batch's content, so a resumed run draws the same."""
    if not share or not lengths:
        return audio_ctx
    key = zlib.crc32("\x1f".join(texts).encode("utf-8"))
    if np.random.default_rng([seed, key, int(sum(lengths))]).random() >= share:
        return audio_ctx
    return dynamic_ctx(max(lengths), audio_ctx)


def mark_dynamic(config) -> None:
    """Record in the model's config that it was trained for the dynamic audio context (and with which rule)."""
    meta = dict(getattr(config, "whisper_edge", None) or {})
    meta["dynamic_ctx"] = {"block": DYNAMIC_BLOCK, "margin": DYNAMIC_MARGIN}
    config.whisper_edge = meta


def trained_dynamic(config) -> dict | None:
    return (getattr(config, "whisper_edge", None) or {}).get("dynamic_ctx")
