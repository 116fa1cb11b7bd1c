"""Audio loading without torch: soundfile decodes, soxr resamples, everything ends 16 kHz mono float32."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

import numpy as np
import soundfile as sf

__all__ = ["SAMPLE_RATE", "AudioError", "as_waveform", "load_audio", "to_mono_16k"]

SAMPLE_RATE = 16_000
log = logging.getLogger("whisper_edge")


class AudioError(ValueError):
    """Audio that cannot be used: unreadable, empty, or not a waveform. The message names the source."""


def to_mono_16k(samples: np.ndarray, sample_rate: int, *, source: str = "audio") -> np.ndarray:
    """Mix down to mono (mean of channels) and resample to 16 kHz; returns float32 in [-1, 1]."""
    x = np.asarray(samples)
    if x.ndim == 2:
        # soundfile gives (frames, channels); a (channels, frames) array with few rows is also accepted.
        chans = x if x.shape[1] <= 8 or x.shape[0] > x.shape[1] else x.T
        if np.issubdtype(chans.dtype, np.integer):
            chans = chans.astype(np.float32) / float(np.iinfo(chans.dtype).max)
        mix = chans.mean(axis=1)
        energy = (chans.astype(np.float64) ** 2).mean(axis=0)
        if chans.shape[1] > 1 and energy.max() > 0 and (mix.astype(np.float64) ** 2).mean() < 0.01 * energy.max():
            # channels in opposite phase cancel in the mix: keep the loudest channel instead of silence
            log.warning("%s: the channels cancel when mixed (opposite phase); using channel %d alone",
                        source, int(energy.argmax()))
            mix = chans[:, int(energy.argmax())]
        x = mix
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


def as_waveform(audio, *, source: str = "array") -> np.ndarray:
    """What the Python API accepts as audio, made 16 kHz mono float32: a path, encoded bytes, a float array at
    16 kHz, integer PCM (scaled by its type's range), or a ``(samples, sample_rate)`` pair (resampled)."""
    if isinstance(audio, (str, os.PathLike, bytes, bytearray)):
        return load_audio(audio)
    if isinstance(audio, tuple) and len(audio) == 2 and isinstance(audio[1], (int, np.integer)) and not isinstance(audio[1], bool):
        return to_mono_16k(np.asarray(audio[0]), int(audio[1]), source=source)
    if isinstance(audio, np.ndarray):
        if audio.dtype == object or not (np.issubdtype(audio.dtype, np.floating) or np.issubdtype(audio.dtype, np.integer)):
            raise AudioError(f"{source}: samples of type {audio.dtype} are not audio")
        return to_mono_16k(audio, SAMPLE_RATE, source=source)
    raise AudioError(f"{source}: cannot transcribe a {type(audio).__name__}; give a file path, encoded bytes, a 16-kHz "
                     "numpy array or a (samples, sample_rate) pair")


def _wav_missing_fraction(source) -> float:
    """For a RIFF/WAVE file: the share of its declared data chunk that is not in the file (0 when whole)."""
    import struct

    try:
        if isinstance(source, (bytes, bytearray)):
            if source[:4] != b"RIFF":  # FLAC/MP3 bytes (every corpus clip): nothing to check, nothing copied
                return 0.0
            head, total = bytes(source[:65536]), len(source)
        else:
            with open(source, "rb") as f:
                head = f.read(65536)
            total = os.path.getsize(source)
    except OSError:
        return 0.0
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return 0.0
    pos = 12
    while pos + 8 <= len(head):
        cid, size = head[pos:pos + 4], struct.unpack("<I", head[pos + 4:pos + 8])[0]
        if cid == b"data":
            have = total - (pos + 8)
            return max(0.0, (size - have) / size) if 0 < size < 0xFFFFFFFF else 0.0
        pos += 8 + size + (size & 1)
    return 0.0


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
    missing = _wav_missing_fraction(source)
    if missing > 0.001:  # libsndfile reads a truncated data chunk quietly
        log.warning("%s: the file is cut short (its header declares %.0f %% more audio than it holds); "
                    "transcribing what is there", name, 100 * missing / (1 - missing))
    return to_mono_16k(samples, rate, source=name)
