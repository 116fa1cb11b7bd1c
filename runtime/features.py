"""Whisper log-mel features in numpy (equal to transformers' WhisperFeatureExtractor within 1e-4).

16 kHz audio, 25-ms Hann window (n_fft 400), 10-ms hop, power spectrum, Slaney-style mel filters
(0–8 kHz), log10 clamped at 1e-10, floored at (max − 8), then (x + 4) / 4. A window of ``A`` encoder
positions takes ``A × 320`` samples (zero-padded) and gives ``2A`` frames.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["log_mel", "mel_filters", "N_FFT", "HOP", "SAMPLE_RATE", "FRAMES_PER_POSITION", "SAMPLES_PER_POSITION",
           "window_samples", "window_seconds", "DYNAMIC_BLOCK", "DYNAMIC_MARGIN", "dynamic_ctx",
           "AUDIO_WINDOWS"]

N_FFT, HOP, SAMPLE_RATE = 400, 160, 16000
FRAMES_PER_POSITION = 2  # the encoder's stride-2 convolution: two mel frames per encoder position
SAMPLES_PER_POSITION = FRAMES_PER_POSITION * HOP  # 320 samples = 20 ms of audio per encoder position


def window_samples(audio_ctx: int) -> int:
    """Samples of audio one window of ``audio_ctx`` encoder positions takes (1500 → 480,000 = 30 s)."""
    return int(audio_ctx) * SAMPLES_PER_POSITION


def window_seconds(audio_ctx: int) -> float:
    return window_samples(audio_ctx) / SAMPLE_RATE


# The dynamic audio context: a clip is encoded in a window of its own length plus a margin, rounded up to a block,
# instead of the full window (docs/export.md). Training (recipe ``dynamic_ctx``) and the runtime use this one rule.
DYNAMIC_BLOCK = 50  # encoder positions: windows grow in 1-s steps
DYNAMIC_MARGIN = 25  # positions (0.5 s) of silence kept after the clip's end
AUDIO_WINDOWS = ("auto", "fixed", "dynamic")  # the runtime's choice (runtime/transcribe.py, DEFAULT_SESSION_OPTIONS)


def dynamic_ctx(n_samples: int, audio_ctx: int, block: int = DYNAMIC_BLOCK, margin: int = DYNAMIC_MARGIN) -> int:
    """Encoder positions for a clip of ``n_samples``: its length plus ``margin``, rounded up to ``block``, at most
    ``audio_ctx`` (a 3.2-s clip: 160 + 25 → 200 positions = a 4-s window instead of 10 s)."""
    if block < 1 or margin < 0:
        raise ValueError(f"dynamic audio context: block must be ≥ 1 and margin ≥ 0 positions, got {block} and {margin}")
    need = -(-int(n_samples) // SAMPLES_PER_POSITION) + margin
    return int(min(audio_ctx, max(block, -(-need // block) * block)))


def _hz_to_mel(f):
    f = np.asarray(f, dtype=np.float64)
    mel = 3.0 * f / 200.0
    log_region = f >= 1000.0
    return np.where(log_region, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / (np.log(6.4) / 27.0), mel)


def _mel_to_hz(m):
    m = np.asarray(m, dtype=np.float64)
    f = 200.0 * m / 3.0
    return np.where(m >= 15.0, 1000.0 * np.exp((np.log(6.4) / 27.0) * (m - 15.0)), f)


@lru_cache(maxsize=4)
def mel_filters(n_mels: int = 80, sr: int = SAMPLE_RATE, n_fft: int = N_FFT) -> np.ndarray:
    """(n_fft/2+1, n_mels) Slaney mel filter bank with Slaney area normalization."""
    fft_freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    mel_pts = np.linspace(_hz_to_mel(0.0), _hz_to_mel(sr / 2), n_mels + 2)
    hz = _mel_to_hz(mel_pts)
    diff = np.diff(hz)
    slopes = hz[None, :] - fft_freqs[:, None]
    down = -slopes[:, :-2] / diff[:-1]
    up = slopes[:, 2:] / diff[1:]
    fb = np.maximum(0.0, np.minimum(down, up))
    fb *= (2.0 / (hz[2: n_mels + 2] - hz[:n_mels]))[None, :]
    return fb.astype(np.float32)


@lru_cache(maxsize=4)
def _sparse_filters(n_mels: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mel filter bank as (FFT bin, weight) pairs grouped by band: each band touches a few bins, so the
    projection is a gather and a segmented sum — no BLAS call, whose worker threads (numpy's OpenBLAS under
    OMP_NUM_THREADS > 1) kept spinning into the encoder's run and slowed it by half (docs/bench.md)."""
    fb = mel_filters(n_mels).astype(np.float64)  # (bins, bands)
    bins, weights, starts = [], [], []
    for band in range(n_mels):
        nz = np.flatnonzero(fb[:, band])
        if not len(nz):  # an empty band (not in Whisper's banks): one zero weight keeps reduceat's segments aligned
            nz = np.array([0])
        starts.append(len(bins))
        bins += nz.tolist()
        weights += fb[nz, band].tolist()
    return np.asarray(bins), np.asarray(weights), np.asarray(starts)


@lru_cache(maxsize=1)
def _window() -> np.ndarray:
    """The periodic Hann window: float32 values (as before), held in float64 for the FFT."""
    return (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32).astype(np.float64)


def log_mel(audio: np.ndarray, *, n_samples: int, n_mels: int = 80, block: int = 128) -> np.ndarray:
    """(n_mels, n_samples / 160) features for one window of 16-kHz mono audio (padded or cut to n_samples).

    The frames are a strided view of the padded audio, transformed ``block`` frames at a time (float64 FFT, as
    Whisper's reference): the transient memory is a few hundred KiB instead of tens of MiB for a 30-s window."""
    x = np.zeros(n_samples, dtype=np.float32)
    a = np.asarray(audio, dtype=np.float32)[:n_samples]
    x[: len(a)] = a
    padded = np.pad(x, N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP][:-1]  # Whisper drops the last frame
    bins, weights, starts = _sparse_filters(n_mels)
    window = _window()
    logm = np.empty((len(frames), n_mels), dtype=np.float64)
    for i in range(0, len(frames), block):
        spec = np.fft.rfft(frames[i:i + block] * window, axis=1)
        power = spec.real ** 2 + spec.imag ** 2
        np.log10(np.maximum(np.add.reduceat(power[:, bins] * weights, starts, axis=1), 1e-10), out=logm[i:i + block])
    logm = np.maximum(logm, logm.max() - 8.0)
    return ((logm + 4.0) / 4.0).T.astype(np.float32)
