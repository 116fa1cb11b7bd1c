"""Guards against hallucination (issue 15): temperature fallback, compression ratio, no-speech (runtime/decoding.py)."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_edge.runtime.decoding import compression_ratio, decode_with_fallback
from whisper_edge.runtime.transcribe import DecodeOptions, Transcriber


def test_compression_ratio_flags_loops_not_speech():
    assert compression_ratio("मेरा भाई शहर के अस्पताल में काम करता है।") < 2.4
    assert compression_ratio("और फिर " * 30) > 2.4
    assert compression_ratio("") == 0.0


class FakeTranscriber:
    """Decodes to scripted texts per temperature: what the fallback does with them is under test."""

    def __init__(self, script: dict, no_speech_p: float = 0.0):
        self.script, self.calls = script, []
        self.no_speech = 3
        logits = np.full(8, -20.0, dtype=np.float32)
        logits[self.no_speech] = np.log(max(no_speech_p, 1e-12))
        logits[0] = np.log(max(1 - no_speech_p, 1e-12))
        self.sot_logits = logits[None]

    def decode_greedy(self, cross, opts, temperature=0.0, rng=None):
        self.calls.append(temperature)
        text, logprob = self.script[temperature]
        self.last_logprob = logprob * (len(text.split()) + 1)
        return list(range(len(text.split())))

    def text(self, ids):
        return self.script[self.calls[-1]][0]


def test_a_loop_falls_back_to_the_next_temperature_and_stops_there():
    tr = FakeTranscriber({0.0: ("और फिर " * 30, -0.2), 0.2: ("आज मौसम बहुत अच्छा है।", -0.3), 0.4: ("x", -0.1)})
    ids, info = decode_with_fallback(tr, {}, DecodeOptions())
    assert tr.calls == [0.0, 0.2] and info["temperature"] == 0.2 and len(ids) == 5
    assert info["compression_ratio"] < 2.4


def test_unsure_text_falls_back_and_the_last_attempt_is_kept_when_none_passes():
    temps = (0.0, 0.5)
    tr = FakeTranscriber({0.0: ("एक दो", -2.0), 0.5: ("तीन चार पाँच", -1.5)})
    ids, info = decode_with_fallback(tr, {}, DecodeOptions(temperatures=temps))
    assert tr.calls == [0.0, 0.5] and len(ids) == 3 and info["avg_logprob"] == -1.5


def test_silence_gives_no_text_only_when_the_text_is_also_unsure():
    silent = FakeTranscriber({0.0: ("धन्यवाद", -1.4)}, no_speech_p=0.9)
    ids, info = decode_with_fallback(silent, {}, DecodeOptions())
    assert ids == [] and info["no_speech"] and info["no_speech_prob"] > 0.6 and silent.calls == [0.0]
    sure = FakeTranscriber({0.0: ("धन्यवाद", -0.2)}, no_speech_p=0.9)
    ids, info = decode_with_fallback(sure, {}, DecodeOptions())
    assert ids and "no_speech" not in info
    off = FakeTranscriber({0.0: ("धन्यवाद", -1.4), 0.2: ("धन्यवाद", -1.4), 0.4: ("धन्यवाद", -1.4), 0.6: ("धन्यवाद", -1.4),
                           0.8: ("धन्यवाद", -1.4), 1.0: ("धन्यवाद", -1.4)}, no_speech_p=0.9)
    ids, info = decode_with_fallback(off, {}, DecodeOptions(no_speech_threshold=None))
    assert ids and len(off.calls) == 6  # guard off: the unsure text falls back through every temperature


def test_bad_guard_options_are_refused():
    with pytest.raises(ValueError, match="temperatures"):
        DecodeOptions(temperatures=())
    with pytest.raises(ValueError, match="no_speech_threshold"):
        DecodeOptions(no_speech_threshold=1.5)


def test_segments_carry_the_guards_figures_and_sampling_is_reproducible(tiny_bundle):
    tr = Transcriber(tiny_bundle)
    assert tr.no_speech is not None  # <|nocaptions|> of Whisper's multilingual vocabulary
    wav = np.random.default_rng(1).standard_normal(16000).astype(np.float32) * 0.1
    opts = DecodeOptions(max_new_tokens=6, temperatures=(0.7,), no_speech_threshold=None, compression_ratio_threshold=None,
                         logprob_threshold=None)
    seg = tr.transcribe_segments(wav, options=opts)[0]
    assert {"temperature", "avg_logprob", "compression_ratio", "no_speech_prob"} <= set(seg) and seg["temperature"] == 0.7
    assert 0 <= seg["no_speech_prob"] <= 1
    assert tr.transcribe_segments(wav, options=opts)[0]["tokens"] == seg["tokens"]  # same seed, same draw
