"""Vocabulary trimming: keep the special tokens and the tokens a language needs, remap the tied
embedding / output projection, and return the map (new id → old id) the runtime uses to detokenize.

Kept: every id from <|endoftext|> on (specials, languages, timestamps), the tokens of the given
text (the training transcripts), every single Devanagari character and digit/punctuation token
(so any Hindi text stays spellable), and the 256 byte-level tokens.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["kept_token_ids", "trim_vocabulary", "trim_tokenizer"]

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


def trim_tokenizer(tok: dict, keep: list[int]) -> dict:
    """A tokenizer.json (as a dict) reduced to the kept ids and every token their BPE merges pass through.

    Ids stay the original ones (the runtime maps the model's new ids back through the manifest's vocab_map).
    In BPE each merged token is made by exactly one merge, so the tokens met while encoding a text are the merge
    ancestors of its final tokens: with those kept, any text whose tokens are all kept encodes to the same ids,
    and every kept id decodes to the same text. Whisper-base's 3.8 MiB file becomes a few hundred KiB for Hindi."""
    import copy

    out = copy.deepcopy(tok)
    model = out["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"cannot trim a {model.get('type')} tokenizer (only byte-level BPE, as Whisper's)")
    merges = [tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    made_by = {a + b: (a, b) for a, b in merges}
    by_id = {i: t for t, i in model["vocab"].items()}
    kept = {by_id[i] for i in keep if i in by_id}
    stack = list(kept)
    while stack:
        parts = made_by.get(stack.pop())
        for p in parts or ():
            if p not in kept:
                kept.add(p)
                stack.append(p)
    model["vocab"] = {t: i for t, i in model["vocab"].items() if t in kept}
    model["merges"] = [list(m) for m in merges if m[0] in kept and m[1] in kept and m[0] + m[1] in kept]
    ids = set(keep)
    out["added_tokens"] = [a for a in out.get("added_tokens", []) if a["id"] in ids]
    for a in out["added_tokens"]:  # in the model's vocabulary too: otherwise the library renumbers them after it
        model["vocab"][a["content"]] = a["id"]
    return out
