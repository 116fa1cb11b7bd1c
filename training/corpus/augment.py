"""Augmentation with numpy only: noise at a target SNR, synthetic room reverb, telephone band.

Each effect is a pure function of (audio, rng), so a seed reproduces the same corpus.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = ["CONDITIONS", "HARD", "PRESETS", "AugmentPreset", "augment", "conditions"]

SR = 16_000


def _colored_noise(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """1/f^exponent noise: 0 white, 1 pink, 2 brown."""
    spectrum = rng.standard_normal(n // 2 + 1) + 1j * rng.standard_normal(n // 2 + 1)
    f = np.fft.rfftfreq(n)
    f[0] = f[1] if n > 1 else 1.0
    noise = np.fft.irfft(spectrum / f ** (exponent / 2), n)
    return noise / (np.std(noise) + 1e-12)


def add_noise(x: np.ndarray, rng: np.random.Generator, snr_db: float) -> np.ndarray:
    noise = _colored_noise(len(x), rng, rng.choice([0.0, 1.0, 2.0]))
    power = np.mean(x**2) + 1e-12
    return x + noise * np.sqrt(power / 10 ** (snr_db / 10))


def add_reverb(x: np.ndarray, rng: np.random.Generator, rt60: float) -> np.ndarray:
    """Convolve with exponentially decaying noise (a diffuse-field room impulse response)."""
    n = int(rt60 * SR)
    t = np.arange(n) / SR
    rir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)  # −60 dB at rt60
    rir[0] = 1.0  # direct path
    rir /= np.sqrt(np.sum(rir**2))
    return convolve_keep_peak(x, rir)


def convolve_keep_peak(x: np.ndarray, rir: np.ndarray) -> np.ndarray:
    """``x`` convolved with an impulse response (FFT, cut to ``x``'s length), scaled back to ``x``'s peak."""
    size = len(x) + len(rir) - 1
    fft = 1 << (size - 1).bit_length()
    y = np.fft.irfft(np.fft.rfft(x, fft) * np.fft.rfft(rir, fft), fft)[: len(x)]
    return y * (np.max(np.abs(x)) / (np.max(np.abs(y)) + 1e-12))


def mix_at_snr(x: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """``noise`` (as long as ``x``) scaled to ``snr_db`` below ``x``'s power and added."""
    power, npow = np.mean(x**2) + 1e-12, np.mean(noise**2) + 1e-12
    return x + noise * np.sqrt(power / npow / 10 ** (snr_db / 10))


def telephone(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """300–3400 Hz band, then 8-bit μ-law companding (G.711-like)."""
    spec = np.fft.rfft(x)
    f = np.fft.rfftfreq(len(x), 1 / SR)
    spec[(f < 300) | (f > 3400)] = 0
    y = np.fft.irfft(spec, len(x))
    y = y / (np.max(np.abs(y)) + 1e-12) * 0.9
    mu = 255.0
    c = np.sign(y) * np.log1p(mu * np.abs(y)) / np.log1p(mu)
    c = np.round(c * 127) / 127
    return np.sign(c) * ((1 + mu) ** np.abs(c) - 1) / mu


@dataclass(frozen=True)
class AugmentPreset:
    p_noise: float
    snr_db: tuple[float, float]
    p_reverb: float
    rt60: tuple[float, float]
    p_telephone: float


PRESETS = {
    "none": AugmentPreset(0.0, (0, 0), 0.0, (0, 0), 0.0),
    "light": AugmentPreset(0.5, (15.0, 30.0), 0.3, (0.15, 0.5), 0.1),
    "heavy": AugmentPreset(0.8, (5.0, 20.0), 0.5, (0.3, 0.9), 0.2),
}
# The corpus's test_noisy split: every clip noisy at 0–10 dB SNR, most reverberant, some telephone band.
HARD = AugmentPreset(1.0, (0.0, 10.0), 0.7, (0.4, 0.9), 0.3)


def augment(x: np.ndarray, preset: AugmentPreset, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Apply the preset's effects, each with its probability; returns (audio, names of effects)."""
    applied = []
    if rng.random() < preset.p_reverb:
        rt60 = rng.uniform(*preset.rt60)
        x = add_reverb(x, rng, rt60)
        applied.append(f"reverb{rt60:.2f}s")
    if rng.random() < preset.p_telephone:
        x = telephone(x, rng)
        applied.append("telephone")
    if rng.random() < preset.p_noise:
        snr = rng.uniform(*preset.snr_db)
        x = add_noise(x, rng, snr)
        applied.append(f"noise{snr:.0f}dB")
    peak = np.max(np.abs(x)) + 1e-12
    if peak > 0.99:
        x = x * (0.99 / peak)
    return x.astype(np.float32), applied


def change_speed(x: np.ndarray, factor: float) -> np.ndarray:
    """Speed perturbation (tempo and pitch together, as Kaldi's): resample to SR / factor, play at SR."""
    import soxr

    return soxr.resample(x.astype(np.float32), SR, SR / factor).astype(np.float32)


def lowpass(x: np.ndarray, cutoff_hz: float) -> np.ndarray:
    """Band-limiting: nothing above ``cutoff_hz`` (a cheap microphone, a narrowband codec)."""
    spec = np.fft.rfft(x)
    spec[np.fft.rfftfreq(len(x), 1 / SR) > cutoff_hz] = 0
    return np.fft.irfft(spec, len(x)).astype(np.float32)


def add_babble(x: np.ndarray, others: list[np.ndarray], rng: np.random.Generator, snr_db: float) -> np.ndarray:
    """Other utterances of the corpus summed (tiled or cut to length) under ``x`` at ``snr_db``."""
    if not others:
        return x
    babble = np.zeros_like(x)
    for o in others:
        if len(o) == 0:
            continue
        reps = int(np.ceil(len(x) / len(o)))
        start = rng.integers(0, len(o))
        babble += np.roll(np.tile(o, reps), -start)[: len(x)]
    return mix_at_snr(x, babble, snr_db)


# WER by condition (training/evaluate.py): the noise bands of test_noisy's 0–10 dB, then reverb and the telephone band
NOISE_BANDS = ((3.0, "noise 0–3 dB"), (6.0, "noise 4–6 dB"), (10.0, "noise 7–10 dB"), (float("inf"), "noise > 10 dB"))
CONDITIONS = ("no noise", *(name for _, name in NOISE_BANDS), "reverb", "no reverb", "telephone")
_SNR = re.compile(r"(?:noise|babble|noisefile\d+-)(-?\d+(?:\.\d+)?)dB")


def conditions(label: str | None) -> list[str]:
    """The conditions a clip's effect label puts it in (the ``augment`` column, as ``augment`` above and
    training/augment.py write it: "reverb0.79s+telephone+noise4dB"): its noise band, reverberant or not, telephone."""
    parts = [p for p in (label or "").split("+") if p]
    snr = next((float(m.group(1)) for p in parts if (m := _SNR.fullmatch(p))), None)
    out = ["no noise" if snr is None else next(name for top, name in NOISE_BANDS if snr <= top)]
    out.append("reverb" if any(p.startswith(("reverb", "rirfile")) for p in parts) else "no reverb")
    if "telephone" in parts:
        out.append("telephone")
    return out
