"""Augmentation on the fly, in training: every epoch hears each utterance in another room, noise and speed.

The corpus's own augmentation is baked into its files (one version per clip); this one draws new effects
each time a clip is loaded, seeded by (recipe seed, clip, draw), so a run reproduces. Effects, each with
its probability (recipe section ``augment``; all off by default, ``recipes/dense.yaml`` turns them on):

* several sentences in one window (``p_concat``: 1–2 other clips appended after a pause, transcripts joined);
* speed perturbation 0.9–1.1 (tempo and pitch, as Kaldi's 3-way perturbation, but continuous);
* pitch shift at the same tempo, −2…+2 semitones (``p_pitch``; a phase vocoder, then a resample: another voice
  height for the same speaker and speaking rate);
* room reverb, RT60 0.2–0.9 s (synthetic diffuse-field impulse responses whose direct-to-reverberant ratio follows
  from a random room and the talker's distance, ``distance_min``–``distance_max``), or a measured impulse response from the
  user's ``rir_dir`` (share ``p_rir_file`` of the reverberated clips);
* band-limiting (low-pass 3–7 kHz) or telephone (300–3400 Hz + μ-law);
* additive noise 0–20 dB SNR: white, pink or brown, or babble of 3 other training utterances, or a recording from the
  user's ``noise_dir`` (share ``p_noise_file`` of the noisy clips; training/sounds.py);
* gain −12…+6 dB (scaled back to full scale where it would clip);
* SpecAugment on the features (the model's own ``apply_spec_augment``: time and feature masks, training mode only).

Cost: numpy FFTs on ≤ 10-s clips, small beside a training step (docs/data.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .corpus.augment import add_babble, add_noise, add_reverb, change_pitch, change_speed, lowpass, reverb_label, room_drr_db, telephone
from .sounds import add_file_noise, add_file_reverb, check_folder, load_sound_folder

__all__ = ["AugmentConfig", "augment_clip"]


@dataclass(frozen=True)
class AugmentConfig:
    p_concat: float = 0.0  # share of training windows that hold 2–3 utterances (batches.py; long-form decoding)
    p_nospeech: float = 0.0  # share of windows replaced by non-speech (silence, noise, hum) labelled <|nocaptions|>,
    #                          so that a fine-tuned model keeps Whisper's own silence detector (docs/longform.md)
    p_speed: float = 0.0
    speed_min: float = 0.9
    speed_max: float = 1.1
    p_pitch: float = 0.0  # pitch shift at the same tempo (training/corpus/augment.py change_pitch)
    pitch_min: float = -2.0  # semitones
    pitch_max: float = 2.0
    p_reverb: float = 0.0
    rt60_min: float = 0.2
    rt60_max: float = 0.9
    distance_min: float = 0.5  # talker to microphone, metres: sets the synthetic room's direct-to-reverberant ratio
    distance_max: float = 3.0  # (training/corpus/augment.py room_drr_db)
    p_lowpass: float = 0.0
    p_telephone: float = 0.0
    p_noise: float = 0.0
    p_babble: float = 0.0  # of the noisy clips, the share whose noise is babble
    snr_min: float = 0.0
    snr_max: float = 20.0
    noise_dir: str | None = None  # a folder of noise recordings (training/sounds.py)
    p_noise_file: float = 0.5  # of the noisy clips, the share whose noise comes from noise_dir (when given)
    rir_dir: str | None = None  # a folder of room impulse responses
    p_rir_file: float = 0.5  # of the reverberated clips, the share convolved with one from rir_dir (when given)
    p_gain: float = 0.0
    gain_min_db: float = -12.0
    gain_max_db: float = 6.0
    spec_augment: bool = False
    mask_time_prob: float = 0.05
    mask_feature_prob: float = 0.05

    def __post_init__(self):
        for k, v in self.__dict__.items():
            if (k.startswith("p_") or k.startswith("mask_")) and (isinstance(v, bool) or not isinstance(v, (int, float))):
                raise ValueError(f"augment.{k} must be a number within [0, 1], got {v!r}")
            if k.startswith("p_") or k.startswith("mask_"):
                if not 0.0 <= v <= 1.0:
                    raise ValueError(f"augment.{k} must be within [0, 1], got {v}")
        ranges = (("speed_min", "speed_max", 0.5, 2.0), ("pitch_min", "pitch_max", -12.0, 12.0), ("rt60_min", "rt60_max", 0.05, 3.0),
                  ("distance_min", "distance_max", 0.1, 20.0),
                  ("snr_min", "snr_max", -10.0, 60.0), ("gain_min_db", "gain_max_db", -40.0, 20.0))
        for lo, hi, a, b in ranges:
            if not a <= getattr(self, lo) <= getattr(self, hi) <= b:
                raise ValueError(f"augment.{lo} ≤ augment.{hi} must lie within [{a}, {b}], got "
                                 f"{getattr(self, lo)} and {getattr(self, hi)}")
        for k in ("noise_dir", "rir_dir"):
            if getattr(self, k) is not None:
                if not isinstance(getattr(self, k), str):
                    raise ValueError(f"augment.{k} must be a folder path, got {getattr(self, k)!r}")
                check_folder(getattr(self, k), k)

    def sounds(self, field: str) -> tuple:
        """The user's recordings for ``noise_dir`` or ``rir_dir`` (read once, cached); () when not given."""
        return load_sound_folder(str(getattr(self, field)), field) if getattr(self, field) is not None else ()

    @property
    def active(self) -> bool:
        return any(v > 0 for k, v in self.__dict__.items() if k.startswith("p_"))


def augment_clip(x: np.ndarray, cfg: AugmentConfig, rng: np.random.Generator, others=None,
                 max_samples: int | None = None) -> tuple[np.ndarray, list[str]]:
    """One random draw of the effects on a 16-kHz clip; returns (audio, names of the effects applied).

    ``others``: a callable returning a few other clips (for babble; called only when babble is drawn);
    ``max_samples``: a slowed-down clip may not outgrow the model's window (its transcript would be cut)."""
    applied = []
    if rng.random() < cfg.p_speed:
        f = rng.uniform(cfg.speed_min, cfg.speed_max)
        if max_samples is None or len(x) / f <= max_samples:
            x = change_speed(x, f)
            applied.append(f"speed{f:.2f}")
    if cfg.p_pitch > 0 and rng.random() < cfg.p_pitch:  # no draw when off: the recipes' streams stay as they were
        st = rng.uniform(cfg.pitch_min, cfg.pitch_max)
        x = change_pitch(x, st)
        applied.append(f"pitch{st:+.1f}st")
    if rng.random() < cfg.p_reverb:
        rirs = cfg.sounds("rir_dir")
        if rirs and rng.random() < cfg.p_rir_file:
            k = int(rng.integers(0, len(rirs)))
            x = add_file_reverb(x, rirs[k])
            applied.append(f"rirfile{k}")
        else:
            rt60 = rng.uniform(cfg.rt60_min, cfg.rt60_max)
            drr = room_drr_db(rng, rt60, (cfg.distance_min, cfg.distance_max))
            x = add_reverb(x, rng, rt60, drr)
            applied.append(reverb_label(rt60, drr))
    if rng.random() < cfg.p_telephone:
        x = telephone(x, rng)
        applied.append("telephone")
    elif rng.random() < cfg.p_lowpass:
        cut = rng.uniform(3000, 7000)
        x = lowpass(x, cut)
        applied.append(f"lowpass{cut / 1000:.1f}k")
    if rng.random() < cfg.p_noise:
        snr = rng.uniform(cfg.snr_min, cfg.snr_max)
        noises = cfg.sounds("noise_dir")
        if noises and rng.random() < cfg.p_noise_file:
            k = int(rng.integers(0, len(noises)))
            x = add_file_noise(x, noises[k], rng, snr)
            applied.append(f"noisefile{k}-{snr:.0f}dB")
        elif others is not None and rng.random() < cfg.p_babble:
            x = add_babble(x, list(others()), rng, snr)
            applied.append(f"babble{snr:.0f}dB")
        else:
            x = add_noise(x, rng, snr)
            applied.append(f"noise{snr:.0f}dB")
    if rng.random() < cfg.p_gain:
        g = rng.uniform(cfg.gain_min_db, cfg.gain_max_db)
        x = x * 10 ** (g / 20)
        applied.append(f"gain{g:+.0f}dB")
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak > 1.0:
        x = x / peak
    return x.astype(np.float32), applied


def nonspeech_clip(rng, max_samples: int) -> np.ndarray:
    """A window without speech: digital silence, white or brown noise, or mains hum, 1 s to the window, −70…−20 dBFS."""
    n = int(rng.integers(16000, max(16001, max_samples)))
    kind = rng.integers(0, 4)
    if kind == 0:
        return np.zeros(n, np.float32)
    if kind == 1:
        x = rng.standard_normal(n)
    elif kind == 2:
        x = np.cumsum(rng.standard_normal(n))
        x -= np.convolve(x, np.ones(801) / 801, mode="same")  # brown noise without its drift
    else:
        t = np.arange(n) / 16000
        f = rng.choice([50.0, 60.0])
        x = np.sin(2 * np.pi * f * t) + 0.4 * np.sin(2 * np.pi * 3 * f * t) + 0.05 * rng.standard_normal(n)
    level = 10 ** (rng.uniform(-70, -20) / 20)
    return (x / (np.sqrt(np.mean(x ** 2)) + 1e-12) * level).astype(np.float32)
