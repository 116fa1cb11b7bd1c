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

Each figure is returned with the window so a caller (the JSON output, the bench) can see why a text was kept.
"""

from __future__ import annotations

import zlib

import numpy as np

__all__ = ["compression_ratio", "decode_with_fallback"]


def compression_ratio(text: str) -> float:
    """len(text) / len(zlib(text)) in bytes: about 1–2 for speech, above 2.4 for a text that repeats itself."""
    b = text.encode("utf-8")
    return len(b) / len(zlib.compress(b)) if b else 0.0


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
