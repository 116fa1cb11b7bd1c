"""Guards against hallucination around one window's decoding (openai/whisper's transcribe(), faster-whisper's defaults).

* **temperature fallback**: decode at temperature 0 (greedy or beam); while the result looks broken, decode again by
  sampling at the next temperature (0.2, 0.4 … 1.0). Broken: its text compresses better than
  ``compression_ratio_threshold`` (2.4: a loop repeats itself and gzip finds it) or its mean log-probability per
  token is below ``logprob_threshold`` (−1: the model is unsure of every token). The last attempt is kept if none
  passes, as openai/whisper does.
* **no speech**: the probability of <|nocaptions|> right after <|startoftranscript|> is the model's own silence
  detector; above ``no_speech_threshold`` (0.6) *and* with a mean log-probability below ``logprob_threshold``, the
  window is silence and gives no text (either signal alone is too often wrong, openai/whisper#1606).
* the **repetition guard** (DecodeOptions.repetition_guard) stops a loop inside one attempt.
* the **restart guard** (DecodeOptions.restart_guard, greedy decoding): a window whose text starts over — its last k ≥
  ``restart_guard`` tokens are its first k — ends before the second copy (a sentence said twice, which the repetition
  guard's short n-grams and the compression ratio both miss).

Each figure is returned with the window so a caller (the JSON output, the bench) can see why a text was kept.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

__all__ = ["compression_ratio", "decode_with_fallback", "periodic", "split_by_timestamps", "timestamp_mask", "DecodeOptions",
           "repeats", "restarts"]


def compression_ratio(text: str) -> float:
    """len(text) / len(zlib(text)) in bytes: about 1–2 for speech, above 2.4 for a text that repeats itself."""
    b = text.encode("utf-8")
    return len(b) / len(zlib.compress(b)) if b else 0.0


def periodic(items: list, min_period: int = 3) -> bool:
    """True when ``items`` (a window's words) is one block of at least ``min_period`` items twice or more in a row (the
    last copy may be cut short): the whole window's text is a loop, as a model decoding in a window sized too tightly
    can produce. Words, not tokens: the first copy's first word has no leading space, the others' have one."""
    n = len(items)
    return any(all(items[i] == items[i - p] for i in range(p, n)) for p in range(min_period, n // 2 + 1))


def _no_speech_prob(tr) -> float | None:
    if tr.no_speech is None or getattr(tr, "sot_logits", None) is None:
        return None
    row = tr.sot_logits[0]
    p = np.exp(row - row.max())
    return float(p[tr.no_speech] / p.sum())


def decode_with_fallback(tr, cross: dict, opts) -> tuple[list[int], dict]:
    """(token ids, {temperature, avg_logprob, compression_ratio, no_speech_prob}) of one encoded window."""
    rng = np.random.default_rng(opts.seed)
    ids: list[int] = []
    info: dict = {}
    for t in opts.temperatures:
        if t == 0 and opts.beam > 1:
            ids = tr.decode_beam(cross, opts)
        else:
            ids = tr.decode_greedy(cross, opts, temperature=t, rng=rng)
        avg = tr.last_logprob / (len(ids) + 1)
        ratio = compression_ratio(tr.text(ids))
        nsp = _no_speech_prob(tr) if t == opts.temperatures[0] else info.get("no_speech_prob")
        info = {"temperature": t, "avg_logprob": round(avg, 4), "compression_ratio": round(ratio, 3),
                "no_speech_prob": None if nsp is None else round(nsp, 4)}
        unsure = opts.logprob_threshold is not None and avg < opts.logprob_threshold
        if nsp is not None and opts.no_speech_threshold is not None and nsp > opts.no_speech_threshold:
            if unsure:  # silence: no text, no fallback
                info["no_speech"] = True
                return [], info
            break  # the model heard speech after all: no fallback (openai/whisper)
        loops = opts.compression_ratio_threshold is not None and ratio > opts.compression_ratio_threshold
        if not (loops or unsure):
            break
    return ids, info


# ------------------------------------------------------------------------------- timestamp tokens

TIME_PRECISION = 0.02  # seconds per timestamp token (<|0.00|>, <|0.02|> … <|30.00|>)
MAX_INITIAL_TIMESTAMP = 1.0  # the first timestamp is at most 1 s into the window (openai/whisper's default)


def timestamp_mask(row: np.ndarray, seq: list[int], *, ts_begin: int, eot: int, window_s: float) -> np.ndarray:
    """openai/whisper's ApplyTimestampRules on one row of logits, given the tokens ``seq`` decoded so far:
    the first token is a timestamp (≤ MAX_INITIAL_TIMESTAMP); timestamps come in pairs (an end, then the next
    start) and never go back; after a lone timestamp no text; a timestamp wins when the timestamps' total
    probability beats the best text token; nothing past the window's length (a 10-s window has no <|12.00|>)."""
    row = row.copy()
    last_allowed = ts_begin + int(round(window_s / TIME_PRECISION))
    row[last_allowed + 1:] = -np.inf
    if not seq:
        row[:ts_begin] = -np.inf
        row[ts_begin + int(round(MAX_INITIAL_TIMESTAMP / TIME_PRECISION)) + 1:] = -np.inf
    else:
        last_ts = seq[-1] >= ts_begin
        penultimate_ts = len(seq) < 2 or seq[-2] >= ts_begin
        if last_ts:
            if penultimate_ts:
                row[ts_begin:] = -np.inf  # a pair just closed: text (or the end) follows
            else:
                row[:eot] = -np.inf  # a segment's end is open: another timestamp or the end
        stamps = [t for t in seq if t >= ts_begin]
        if stamps:
            floor = stamps[-1] if (last_ts and not penultimate_ts) else stamps[-1] + 1
            row[ts_begin:floor] = -np.inf
    finite = np.isfinite(row)
    if finite[ts_begin:].any() and finite[:ts_begin].any():
        m = row[finite].max()
        logp = row - (m + np.log(np.exp(row[finite] - m).sum()))
        ts = logp[ts_begin:][np.isfinite(logp[ts_begin:])]
        if np.logaddexp.reduce(ts) > logp[:ts_begin].max():
            row[:ts_begin] = -np.inf
    return row


def split_by_timestamps(ids: list[int], ts_begin: int, window_s: float) -> list[tuple[float, float, list[int]]]:
    """(start s, end s, text ids) of each <|t0|> text <|t1|> run in one window's tokens; a run left open at the end
    of the window ends at the window's length, text before the first timestamp starts at 0."""
    out, start, text = [], 0.0, []
    for t in ids:
        if t >= ts_begin:
            when = (t - ts_begin) * TIME_PRECISION
            if text:
                out.append((start, max(start, when), text))
                text = []
            start = when
        else:
            text.append(t)
    if text:
        out.append((start, window_s, text))
    return out


@dataclass(frozen=True)
class DecodeOptions:
    """Decoding settings. The guards against hallucination follow openai/whisper's transcribe() (and faster-whisper's
    defaults): a window is decoded at temperature 0 and decoded again at the next of ``temperatures`` (sampling)
    while its text compresses better than ``compression_ratio_threshold`` (a loop) or its mean log-probability is
    below ``logprob_threshold``; a window whose <|nocaptions|> probability exceeds ``no_speech_threshold`` and whose
    mean log-probability is below ``logprob_threshold`` is silence (no text). None switches a guard off;
    ``temperatures=(0.0,)`` is plain greedy/beam decoding (what the bench compares with the peers)."""
    beam: int = 1
    max_new_tokens: int = 200
    language: str | None = None  # None: the bundle's
    repetition_guard: int = 0  # stop when the last n-gram (n ≤ 16) repeats this many times; 0 = off
    restart_guard: int = 0  # greedy: stop, dropping the copy, once the last k ≥ this many tokens are the first k; 0 = off
    length_penalty: float = 1.0
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    compression_ratio_threshold: float | None = 2.4
    logprob_threshold: float | None = -1.0
    no_speech_threshold: float | None = 0.6
    seed: int = 0  # the sampling's random draw (reproducible)
    timestamps: bool = False  # decode Whisper's timestamp tokens: segments get the model's own times in each window

    def __post_init__(self):
        if self.beam < 1:
            raise ValueError(f"beam must be ≥ 1, got {self.beam}")
        if self.restart_guard < 0:
            raise ValueError(f"restart_guard must be ≥ 0 (0 = off), got {self.restart_guard}")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be ≥ 1, got {self.max_new_tokens}")
        if not self.temperatures or any(t < 0 for t in self.temperatures):
            raise ValueError(f"temperatures must be a non-empty list of values ≥ 0, got {self.temperatures!r}")
        if self.no_speech_threshold is not None and not 0 <= self.no_speech_threshold <= 1:
            raise ValueError(f"no_speech_threshold must be within [0, 1], got {self.no_speech_threshold}")


def restarts(tokens: list[int], min_len: int, same=None) -> int:
    """``min_len`` when the last ``min_len`` tokens repeat the first ``min_len`` — the text started over —, else 0
    (0 also when ``min_len`` is 0: off). Called after every token, so a copy is caught as its ``min_len``-th token
    arrives: one comparison per step, not one per possible length. ``same(a, b)``: whether two first tokens differ
    only by a leading space (the text's first word has none, the copy's, after a full stop, has one)."""
    n = max(min_len, 2) if min_len > 0 else 0
    if not n or len(tokens) < 2 * n or tokens[-n + 1:] != tokens[1:n]:
        return 0
    return n if tokens[-n] == tokens[0] or (same is not None and same(tokens[-n], tokens[0])) else 0


def repeats(tokens: list[int], times: int) -> bool:
    if times < 2:
        return False
    for n in range(1, 17):
        if len(tokens) < n * times:
            break
        tail = tokens[-n:]
        if all(tokens[-(k + 1) * n: len(tokens) - k * n] == tail for k in range(1, times)):
            return True
    return False
