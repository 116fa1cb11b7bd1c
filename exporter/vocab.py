"""Vocabulary trimming: keep the special tokens and the tokens a language needs, remap the tied
embedding / output projection, and return the map (new id → old id) the runtime uses to detokenize.

Kept: every id from <|endoftext|> on (specials, languages, timestamps), the tokens of the given
text (the training transcripts), every single Devanagari character and digit/punctuation token
(so any Hindi text stays spellable), and the 256 byte-level tokens.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["kept_token_ids", "trim_vocabulary"]

_EXTRA_CHARS = [chr(c) for c in range(0x0900, 0x0980)] + list("0123456789 .,?!।-'\"")


def kept_token_ids(tokenizer, texts, vocab_size: int) -> list[int]:
    eot = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    keep = set(range(eot, vocab_size))
    backend = tokenizer.backend_tokenizer
    vocab = backend.get_vocab()
    from transformers.models.gpt2.tokenization_gpt2 import bytes_to_unicode

    keep |= {vocab[ch] for ch in bytes_to_unicode().values() if ch in vocab}
    for text in list(texts) + _EXTRA_CHARS:
        for prefix in ("", " "):
            keep.update(backend.encode(prefix + text, add_special_tokens=False).ids)
    return sorted(i for i in keep if i < vocab_size)


def trim_vocabulary(model, processor, texts) -> list[int]:
    """Shrink the model's vocabulary in place; returns the kept old ids (index = new id)."""
    texts = list(texts)
    if not texts:
        raise ValueError("--vocab hi needs the training transcripts (give --data) to know which tokens to keep")
    keep = kept_token_ids(processor.tokenizer, texts, model.config.vocab_size)
    idx = torch.tensor(keep)
    old = model.model.decoder.embed_tokens
    new = nn.Embedding(len(keep), old.embedding_dim, padding_idx=None)
    with torch.no_grad():
        new.weight.copy_(old.weight.index_select(0, idx))
    model.model.decoder.embed_tokens = new
    model.proj_out = nn.Linear(old.embedding_dim, len(keep), bias=False)
    model.proj_out.weight = new.weight
    model.config.vocab_size = len(keep)
    return keep
