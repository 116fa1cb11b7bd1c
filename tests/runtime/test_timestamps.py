"""Whisper's timestamp tokens: openai/whisper's rules as a logit mask, and segments at the model's own times."""

import numpy as np

from whisper_edge.runtime.decoding import TIME_PRECISION, split_by_timestamps, timestamp_mask

TS, EOT, V = 100, 50, 200  # a toy vocabulary: text < 50, eot 50, specials 51..99, timestamps 100.. (0.02 s each)


def _allowed(row):
    return set(np.flatnonzero(np.isfinite(row)).tolist())


def test_the_rules_first_a_timestamp_then_pairs_never_backwards_and_nothing_past_the_window():
    row = np.zeros(V)
    first = _allowed(timestamp_mask(row, [], ts_begin=TS, eot=EOT, window_s=10.0))
    assert first == set(range(TS, TS + 51))  # a timestamp ≤ 1.00 s
    # after <|0.40|> text: text, the end or a later timestamp (≤ the 1-s window), while text is the likelier
    sure = np.zeros(V)
    sure[7] = 10.0
    mid = _allowed(timestamp_mask(sure, [TS + 20, 7], ts_begin=TS, eot=EOT, window_s=1.0))
    assert {7, EOT, TS + 21, TS + 50} <= mid and TS + 20 not in mid and TS + 51 not in mid
    # a lone closing timestamp: no text, another timestamp not earlier than it (the next start) or the end
    open_ = _allowed(timestamp_mask(row, [TS, 7, TS + 30], ts_begin=TS, eot=EOT, window_s=10.0))
    assert not open_ & set(range(EOT)) and TS + 29 not in open_ and TS + 30 in open_
    # a pair just closed: text or the end, no third timestamp in a row
    closed = _allowed(timestamp_mask(row, [TS, 7, TS + 30, TS + 30], ts_begin=TS, eot=EOT, window_s=10.0))
    assert not closed & set(range(TS, V)) and 7 in closed
    # the timestamps' total probability beats the best text token: a timestamp must come
    row2 = np.full(V, -5.0)
    row2[3] = 0.0
    row2[TS + 25: TS + 40] = -1.0  # 15 × e^-1 ≈ 5.5 > e^0
    forced = _allowed(timestamp_mask(row2, [TS, 7], ts_begin=TS, eot=EOT, window_s=10.0))
    assert not forced & set(range(TS))


def test_split_by_timestamps_gives_each_run_its_times():
    ids = [TS + 0, 1, 2, TS + 50, TS + 60, 3, TS + 100, TS + 110, 4]
    assert split_by_timestamps(ids, TS, 5.0) == [(0.0, 50 * TIME_PRECISION, [1, 2]), (60 * TIME_PRECISION, 2.0, [3]),
                                                 (110 * TIME_PRECISION, 5.0, [4])]
    assert split_by_timestamps([5, 6], TS, 3.0) == [(0.0, 3.0, [5, 6])]


def test_decoding_with_timestamps_follows_the_rules_and_times_stay_inside_the_window(tiny_bundle, clips):
    from whisper_edge.runtime.transcribe import DecodeOptions, Transcriber

    tr = Transcriber(tiny_bundle)
    opts = DecodeOptions(timestamps=True, temperatures=(0.0,), max_new_tokens=24)
    from whisper_edge.runtime.audio import load_audio

    audio = np.concatenate([np.zeros(8000, np.float32), load_audio(clips[0]["path"])])
    chunk = audio[: tr.n_samples]
    tr.chunk_s = len(chunk) / 16000
    ids = tr.decode_greedy(tr.encode(tr.features(chunk)[None]), opts)
    assert ids and ids[0] >= tr.ts_begin and ids[0] - tr.ts_begin <= 50
    stamps = [t for t in ids if t >= tr.ts_begin]
    assert all((b - tr.ts_begin) * TIME_PRECISION <= tr.chunk_s + 1e-9 for b in stamps)
    assert stamps == sorted(stamps)
    segs = tr.transcribe_segments(audio, options=opts)
    assert segs and all(0 <= s["start"] <= s["end"] <= len(audio) / 16000 + 1e-6 for s in segs)
    assert all(t < tr.ts_begin for s in segs for t in s["tokens"])  # timestamp tokens are times, not text
    plain = tr.prompt(None)
    assert tr.prompt(None, timestamps=True) == plain[:-1] and plain[-1] == tr.tok["no_timestamps"]
