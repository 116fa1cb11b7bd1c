"""WER and CER through jiwer, under three normalizations side by side.

    hindi   our Hindi normalizer (runtime.normalize, preset "default"): the figure we report
    basic   transformers' BasicTextNormalizer (what most Whisper fine-tuning reports use)
    raw     the text as it is, whitespace collapsed
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jiwer

from .normalize import PRESETS, basic_normalize

__all__ = ["NORMALIZERS", "error_rates", "error_rates_by_normalizer"]

NORMALIZERS: dict[str, Callable[[str], str]] = {
    "hindi": PRESETS["default"],
    "basic": basic_normalize,
    "raw": lambda s: " ".join(s.split()),
}


def error_rates(refs: Sequence[str], hyps: Sequence[str], normalizer: Callable[[str], str]) -> dict:
    """Corpus-level WER and CER in percent, with the edit counts behind them.

    Utterances whose reference normalizes to nothing are left out (jiwer cannot score them)
    and counted in ``empty_refs``.
    """
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references but {len(hyps)} hypotheses")
    pairs = [(normalizer(r), normalizer(h)) for r, h in zip(refs, hyps)]
    scored = [(r, h) for r, h in pairs if r]
    if not scored:
        raise ValueError("no reference has any text after normalization; nothing to score")
    r, h = zip(*scored)
    words = jiwer.process_words(list(r), list(h))
    chars = jiwer.process_characters(list(r), list(h))
    n_words = words.hits + words.substitutions + words.deletions
    return {
        "wer": 100.0 * words.wer,
        "cer": 100.0 * chars.cer,
        "substitutions": words.substitutions,
        "deletions": words.deletions,
        "insertions": words.insertions,
        "ref_words": n_words,
        "empty_refs": len(pairs) - len(scored),
    }


def error_rates_by_normalizer(refs: Sequence[str], hyps: Sequence[str]) -> dict[str, dict]:
    return {name: error_rates(refs, hyps, fn) for name, fn in NORMALIZERS.items()}
