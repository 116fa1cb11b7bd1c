"""WER and CER through jiwer, under three normalizations side by side.

    hindi   our Hindi normalizer (runtime.normalize, preset "default"): the figure we report
    basic   transformers' BasicTextNormalizer (what most Whisper fine-tuning reports use)
    raw     the text as it is, whitespace collapsed
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jiwer

from .normalize import PRESETS, basic_normalize

__all__ = ["NORMALIZERS", "error_rates", "error_rates_by_normalizer", "matched_errors", "paired_bootstrap", "paired_by_id",
           "scored", "utterance_errors"]

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


def utterance_errors(refs: Sequence[str], hyps: Sequence[str], normalizer: Callable[[str], str] = PRESETS["default"]) -> list[tuple[int, int]]:
    """(word errors, reference words) of every utterance, after ``normalizer`` (empty references give (0, 0))."""
    out = []
    for r, h in zip(refs, hyps):
        r, h = normalizer(r), normalizer(h)
        if not r:
            out.append((0, 0))
            continue
        w = jiwer.process_words(r, h or "")
        out.append((w.substitutions + w.deletions + w.insertions, w.hits + w.substitutions + w.deletions))
    return out


def scored(rep: dict) -> list[list]:
    """[id, word errors, reference words] per utterance of an evaluation report (its ``per_utterance`` rows with id, ref
    and hyp): what a paired bootstrap between models needs."""
    rows = rep["per_utterance"]
    return [[r["id"], e, w] for r, (e, w) in zip(rows, utterance_errors([r["ref"] for r in rows], [r["hyp"] for r in rows]))]


def _pair(errors_a: Sequence[tuple[int, int]], errors_b: Sequence[tuple[int, int]]):
    """The two systems' (errors, words) as arrays, refused unless they were scored on the same references."""
    import numpy as np

    if len(errors_a) != len(errors_b) or not errors_a:
        raise ValueError(f"paired bootstrap needs the same non-empty utterances for both systems "
                         f"({len(errors_a)} vs {len(errors_b)})")
    a, b = np.asarray(errors_a, dtype=np.float64), np.asarray(errors_b, dtype=np.float64)
    if np.any(a[:, 1] != b[:, 1]):
        raise ValueError("paired bootstrap: the two systems were scored on different references")
    return a, b


def _diffs(a, b, idx):
    """WER(b) − WER(a) in points on each resample (rows of utterance indices ``idx``)."""
    words = a[idx, 1].sum(1)
    words[words == 0] = 1
    return 100.0 * (b[idx, 0].sum(1) - a[idx, 0].sum(1)) / words


def _point(a, b) -> float:
    return float(100.0 * (b[:, 0].sum() - a[:, 0].sum()) / max(a[:, 1].sum(), 1))


def paired_bootstrap(errors_a: Sequence[tuple[int, int]], errors_b: Sequence[tuple[int, int]], *, n: int = 2000,
                     seed: int = 0) -> dict:
    """WER(b) − WER(a) in points with a 95 % interval, resampling utterances (the same draw for both systems).

    ``errors_*``: per-utterance (errors, reference words) of two systems on the same utterances, in the same order.
    """
    one = pooled_bootstrap([(errors_a, errors_b)], n=n, seed=seed)  # one run: its own difference and draws
    return {"diff": one["diff"], "lo": one["lo"], "hi": one["hi"], "utterances": one["utterances"][0], "resamples": n}


def matched_errors(a: Sequence, b: Sequence) -> tuple[list, list, list]:
    """Utterances both scored ([id, errors, words] rows) by id, so every bootstrap resamples alike: a's, b's, ids."""
    eb = {u[0]: (u[1], u[2]) for u in b}
    common = sorted((u for u in a if u[0] in eb), key=lambda u: str(u[0]))
    return [tuple(u[1:]) for u in common], [eb[u[0]] for u in common], [u[0] for u in common]


def paired_by_id(a: Sequence, b: Sequence) -> dict | None:
    """``paired_bootstrap`` of WER(b) − WER(a) over the utterances both scored ([id, errors, words] rows, matched by
    id); None when they share none."""
    ea, eb, ids = matched_errors(a, b)
    return paired_bootstrap(ea, eb) if ids else None


def pooled_bootstrap(pairs: Sequence[tuple[Sequence, Sequence]], ids: Sequence[Sequence[str]] | None = None, *,
                     n: int = 2000, seed: int = 0) -> dict:
    """The mean over runs of WER(b) − WER(a) (each run's own pair, e.g. a pruned model and its own dense model), with
    a 95 % interval: every run weighs the same, whatever its number of words.

    ``pairs``: per run, the two systems' per-utterance (errors, words) as ``paired_bootstrap`` takes them. ``ids``:
    per run, its utterances' ids in that order. Where every run was scored on the same ids in the same order (one
    test split, several runs), each resample draws the same utterances for all runs — a hard utterance is hard for
    every run, so their differences are not independent; otherwise each run is resampled on its own.
    """
    import numpy as np

    if not pairs:
        raise ValueError("pooled bootstrap needs at least one run")
    arrays = [_pair(a, b) for a, b in pairs]
    joint = ids is not None and len(ids) == len(arrays) and all(list(i) == list(ids[0]) for i in ids)
    rng = np.random.default_rng(seed)
    shared = rng.integers(0, len(arrays[0][0]), size=(n, len(arrays[0][0]))) if joint else None
    diffs = sum(_diffs(a, b, shared if joint else rng.integers(0, len(a), size=(n, len(a)))) for a, b in arrays)
    points = [_point(a, b) for a, b in arrays]
    lo, hi = np.percentile(diffs / len(arrays), [2.5, 97.5])
    return {"diff": float(np.mean(points)), "lo": float(lo), "hi": float(hi), "per_run": points,
            "utterances": [len(a) for a, _ in arrays], "joint": joint, "resamples": n}
