"""Audio loading without torch: soundfile decodes, soxr resamples, everything ends 16 kHz mono float32."""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = ["SAMPLE_RATE", "AudioError", "load_audio", "to_mono_16k"]

SAMPLE_RATE = 16_000


class AudioError(ValueError):
    """Audio that cannot be used: unreadable, empty, or not a waveform. The message names the source."""


def to_mono_16k(samples: np.ndarray, sample_rate: int, *, source: str = "audio") -> np.ndarray:
    """Mix down to mono (mean of channels) and resample to 16 kHz; returns float32 in [-1, 1]."""
    x = np.asarray(samples)
    if x.ndim == 2:
        # soundfile gives (frames, channels); a (channels, frames) array with few rows is also accepted.
        x = x.mean(axis=1) if x.shape[1] <= 8 or x.shape[0] > x.shape[1] else x.mean(axis=0)
    elif x.ndim != 1:
        raise AudioError(f"{source}: expected a 1-D or 2-D waveform, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        if np.issubdtype(x.dtype, np.integer):
            x = x.astype(np.float32) / float(np.iinfo(x.dtype).max)
        else:
            raise AudioError(f"{source}: samples of type {x.dtype} are not audio")
    x = x.astype(np.float32, copy=False)
    if x.size == 0:
        raise AudioError(f"{source}: the audio is empty (0 samples)")
    if not np.all(np.isfinite(x)):
        raise AudioError(f"{source}: the audio contains NaN or infinite samples")
    if sample_rate <= 0:
        raise AudioError(f"{source}: invalid sample rate {sample_rate}")
    if sample_rate != SAMPLE_RATE:
        import soxr  # imported here: a 16 kHz-only user never needs it loaded

        x = soxr.resample(x, sample_rate, SAMPLE_RATE, quality="HQ").astype(np.float32, copy=False)
    return x


def load_audio(source: str | os.PathLike | bytes) -> np.ndarray:
    """Read a file path or encoded bytes (WAV, FLAC, OGG, MP3) into 16 kHz mono float32."""
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    if not isinstance(source, (bytes, bytearray)) and not Path(source).is_file():
        raise AudioError(f"{name}: no such audio file")
    try:
        handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
        samples, rate = sf.read(handle, dtype="float32", always_2d=False)
    except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
        raise AudioError(
            f"{name}: cannot decode audio ({exc}); supported: WAV, FLAC, OGG/Vorbis, MP3"
        ) from None
    return to_mono_16k(samples, rate, source=name)
