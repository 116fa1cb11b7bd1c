"""WPE dereverberation (runtime/dereverb.py): an exact STFT pair, a tail removed, dry audio left alone."""

from __future__ import annotations

import numpy as np
import pytest

from whisper_edge.runtime.dereverb import istft, stft, wpe


def _sdr(ref, est):
    a = np.dot(est, ref) / np.dot(ref, ref)
    return 10 * np.log10(np.sum((a * ref) ** 2) / np.sum((est - a * ref) ** 2))


def _syllables(rng, count=16):
    """Harmonic bursts of 120–250 ms with random pitch, 50–200 ms apart: speech-like onsets and gaps."""
    parts = []
    for _ in range(count):
        n = int(rng.uniform(0.12, 0.25) * 16000)
        t, f0 = np.arange(n) / 16000, rng.uniform(100, 220)
        parts += [sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.3)) / k for k in range(1, 12)) * np.hanning(n),
                  np.zeros(int(rng.uniform(0.05, 0.2) * 16000))]
    return np.concatenate(parts) * 0.1


def test_stft_pair_is_exact():
    x = np.random.default_rng(0).standard_normal(16000 + 77)
    assert np.max(np.abs(istft(stft(x), len(x)) - x)) < 1e-9


def test_wpe_removes_part_of_a_late_tail_and_keeps_dry_audio():
    rng = np.random.default_rng(0)
    x = _syllables(rng)
    n = int(0.6 * 16000)
    rir = rng.standard_normal(n) * np.exp(-6.9 * np.arange(n) / n)  # RT60 0.6 s
    rir[0] = 0.0
    rir *= np.sqrt(10 ** 0.5 / np.sum(rir ** 2))  # tail 5 dB above the direct path
    rir[0] = 1.0
    y = np.convolve(x, rir)[:len(x)]
    early = np.convolve(x, rir[:640])[:len(x)]  # direct path + first 40 ms: what WPE keeps by design
    z = wpe(y)
    assert z.dtype == np.float32 and len(z) == len(y)
    assert _sdr(early, z) > _sdr(early, y) + 0.1  # closer to the early signal (a small gain: docs/data.md)
    assert _sdr(x, wpe(x)) > 30  # no room, nothing to take away


def test_wpe_bad_settings_and_short_clips():
    with pytest.raises(ValueError, match="taps"):
        wpe(np.zeros(16000, np.float32), taps=0)
    short = np.ones(300, np.float32)
    assert np.array_equal(wpe(short), short)
