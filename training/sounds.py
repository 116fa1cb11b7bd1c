"""Noise recordings and room impulse responses a user supplies as folders (recipe ``augment.noise_dir`` /
``augment.rir_dir``): real rooms and real noise beside the synthetic ones.

Every audio file under the folder (WAV, FLAC, OGG, MP3; any rate or channel count) is read once into 16-kHz mono,
noise cut to its first 30 s, impulse responses to 2 s, at most an hour of audio in all. A file that cannot be read is
reported by name with the reason and left out; the others are used. A folder with no readable file is an error that
names the recipe field.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

import numpy as np

from ..runtime.audio import SAMPLE_RATE, AudioError, load_audio
from .corpus.augment import convolve_keep_peak, mix_at_snr

__all__ = ["check_folder", "load_sound_folder", "add_file_noise", "add_file_reverb", "SOUND_SUFFIXES"]

log = logging.getLogger("whisper_edge")
SOUND_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}
_MAX_SECONDS = {"noise_dir": 30.0, "rir_dir": 2.0}
_TOTAL_SECONDS = 3600.0


def check_folder(path, field: str) -> None:
    """The folder exists and holds audio files by name (their contents are read at the start of training)."""
    p = Path(path)
    if not p.is_dir():
        raise ValueError(f"augment.{field}: {p} is not a folder")
    if not any(f.suffix.lower() in SOUND_SUFFIXES for f in p.rglob("*") if f.is_file()):
        raise ValueError(f"augment.{field}: {p} holds no audio files ({', '.join(sorted(SOUND_SUFFIXES))})")


@functools.lru_cache(maxsize=8)
def load_sound_folder(path: str, field: str) -> tuple[np.ndarray, ...]:
    """The readable sounds of ``path`` (sorted by file name) as 16-kHz float32 arrays; unreadable files are logged."""
    check_folder(path, field)
    limit = int(_MAX_SECONDS[field] * SAMPLE_RATE)
    sounds, skipped, total = [], [], 0
    for f in sorted(x for x in Path(path).rglob("*") if x.is_file() and x.suffix.lower() in SOUND_SUFFIXES):
        try:
            x = load_audio(f)[:limit]
        except AudioError as exc:
            skipped.append(f)
            log.warning("augment.%s: skipping %s", field, exc)  # the message starts with the file's path
            continue
        if len(x) < SAMPLE_RATE // 100 or not np.any(x):
            skipped.append(f)
            log.warning("augment.%s: skipping %s: silent or shorter than 10 ms", field, f)
            continue
        sounds.append(x.astype(np.float32))
        total += len(x)
        if total >= _TOTAL_SECONDS * SAMPLE_RATE:
            log.warning("augment.%s: %s holds more than an hour of audio; using the first %d files", field, path,
                        len(sounds))
            break
    if not sounds:
        raise ValueError(f"augment.{field}: none of the audio files in {path} could be read ({len(skipped)} skipped, "
                         "reasons above)")
    log.info("augment.%s: %d sounds from %s (%d files skipped)", field, len(sounds), path, len(skipped))
    return tuple(sounds)


def add_file_noise(x: np.ndarray, noise: np.ndarray, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    """A random stretch of a recorded noise (looped when shorter than ``x``) under ``x`` at ``snr_db``."""
    reps = int(np.ceil(len(x) / len(noise))) + 1
    start = int(rng.integers(0, len(noise)))
    return mix_at_snr(x, np.tile(noise, reps)[start:start + len(x)], snr_db)


def add_file_reverb(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``x`` convolved with a measured impulse response, aligned at its direct path, peak level kept."""
    return convolve_keep_peak(x, rir[int(np.argmax(np.abs(rir))):])
