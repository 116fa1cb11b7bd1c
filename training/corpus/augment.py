"""Augmentation with numpy only: noise at a target SNR, synthetic room reverb, telephone band.

Each effect is a pure function of (audio, rng), so a seed reproduces the same corpus.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

__all__ = ["CONDITIONS", "HARD", "PRESETS", "AugmentPreset", "augment", "conditions", "room_drr_db"]

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


# A synthetic room in Sabine's diffuse-field model: the direct sound, then exponentially decaying noise whose energy
# against the direct sound's (the direct-to-reverberant ratio) follows from the room and the source distance,
# DRR = 20·log10(r_c / r) with the critical distance r_c = 0.057·√(V / RT60). Until session 14 the tail carried all
# the energy whatever the room (DRR −27 to −30 dB: no audible direct sound, about 20 dB harsher than a far-field
# microphone 2 m away in a 0.7-s room); docs/data.md "Reverb with a direct sound".
ROOM_VOLUME_M3 = (30.0, 300.0)  # log-uniform: a small office to a classroom


def room_drr_db(rng: np.random.Generator, rt60: float, distance: tuple[float, float]) -> float:
    """The direct-to-reverberant ratio (dB) of a random room (volume log-uniform in ROOM_VOLUME_M3) with reverberation
    time ``rt60`` and the talker ``distance`` metres (uniform within the pair) from the microphone."""
    volume = float(np.exp(rng.uniform(np.log(ROOM_VOLUME_M3[0]), np.log(ROOM_VOLUME_M3[1]))))
    r = float(rng.uniform(*distance))
    return float(20 * np.log10(0.057 * np.sqrt(volume / rt60) / r))


def add_reverb(x: np.ndarray, rng: np.random.Generator, rt60: float, drr_db: float) -> np.ndarray:
    """Convolve with a diffuse-field room impulse response: a direct path, then exponentially decaying noise (−60 dB at
    ``rt60``) whose energy is ``drr_db`` below the direct path's."""
    n = max(int(rt60 * SR), 2)
    t = np.arange(n) / SR
    rir = rng.standard_normal(n) * np.exp(-6.9 * t / rt60)
    rir[0] = 0.0
    rir *= np.sqrt(10 ** (-drr_db / 10) / (np.sum(rir**2) + 1e-12))
    rir[0] = 1.0  # direct path
    return convolve_keep_peak(x, rir)


def reverb_label(rt60: float, drr_db: float) -> str:
    return f"reverb{rt60:.2f}s@{drr_db:.0f}dB"  # no "+" sign: effect labels are joined with "+"


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
    distance: tuple[float, float] = (0.5, 3.0)  # talker to microphone, metres (room_drr_db)


PRESETS = {
    "none": AugmentPreset(0.0, (0, 0), 0.0, (0, 0), 0.0),
    "light": AugmentPreset(0.5, (15.0, 30.0), 0.3, (0.15, 0.5), 0.1),
    "heavy": AugmentPreset(0.8, (5.0, 20.0), 0.5, (0.3, 0.9), 0.2),
}
# The corpus's test_noisy split: every clip noisy at 0–10 dB SNR, most reverberant with the talker far from the
# microphone (1–4 m: DRR about −21 to +2 dB, median −11), some telephone band.
HARD = AugmentPreset(1.0, (0.0, 10.0), 0.7, (0.4, 0.9), 0.3, (1.0, 4.0))


def augment(x: np.ndarray, preset: AugmentPreset, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Apply the preset's effects, each with its probability; returns (audio, names of effects)."""
    applied = []
    if rng.random() < preset.p_reverb:
        rt60 = rng.uniform(*preset.rt60)
        drr = room_drr_db(rng, rt60, preset.distance)
        x = add_reverb(x, rng, rt60, drr)
        applied.append(reverb_label(rt60, drr))
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


def time_stretch(x: np.ndarray, rate: float, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Tempo × ``rate`` at the same pitch (phase vocoder: the STFT's frames read at ``rate``× their hop, magnitudes
    interpolated, each bin's phase advanced by its measured instantaneous frequency); length round(len(x) / rate)."""
    from ...runtime.dereverb import istft, stft

    if len(x) < n_fft:
        return np.asarray(x, np.float32)
    spec = stft(x, n_fft, hop).T  # (bins, frames)
    steps = np.arange(0.0, spec.shape[1] - 1, rate)
    i, frac = steps.astype(int), (steps % 1.0)[None, :]
    mag = (1 - frac) * np.abs(spec[:, i]) + frac * np.abs(spec[:, i + 1])
    omega = 2 * np.pi * hop * np.arange(spec.shape[0]) / n_fft  # expected phase advance per hop
    dphi = np.angle(spec[:, i + 1]) - np.angle(spec[:, i]) - omega[:, None]
    dphi = omega[:, None] + (dphi + np.pi) % (2 * np.pi) - np.pi
    phase = np.angle(spec[:, :1]) + np.concatenate([np.zeros((spec.shape[0], 1)), np.cumsum(dphi, axis=1)[:, :-1]], 1)
    return istft((mag * np.exp(1j * phase)).T, int(round(len(x) / rate)), n_fft, hop).astype(np.float32)


def change_pitch(x: np.ndarray, semitones: float) -> np.ndarray:
    """Pitch shift by ``semitones`` at the same tempo and length: stretch in time by the pitch ratio, then resample
    (change_speed) by it."""
    ratio = 2.0 ** (semitones / 12.0)
    y = change_speed(time_stretch(x, 1.0 / ratio), ratio)
    return np.pad(y, (0, max(0, len(x) - len(y))))[: len(x)].astype(np.float32)


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
# reverberant clips also by their direct-to-reverberant ratio (labels written since session 14 carry it)
DRR_BANDS = ((-10.0, "reverb, DRR < −10 dB"), (0.0, "reverb, DRR −10–0 dB"), (float("inf"), "reverb, DRR ≥ 0 dB"))
CONDITIONS = ("no noise", *(name for _, name in NOISE_BANDS), "reverb", *(name for _, name in DRR_BANDS), "no reverb",
              "telephone")
_SNR = re.compile(r"(?:noise|babble|noisefile\d+-)(-?\d+(?:\.\d+)?)dB")
_DRR = re.compile(r"reverb[\d.]+s@(-?\d+(?:\.\d+)?)dB")


def conditions(label: str | None) -> list[str]:
    """The conditions a clip's effect label puts it in (the ``augment`` column, as ``augment`` above and
    training/augment.py write it: "reverb0.79s+telephone+noise4dB"): its noise band, reverberant or not, telephone."""
    parts = [p for p in (label or "").split("+") if p]
    snr = next((float(m.group(1)) for p in parts if (m := _SNR.fullmatch(p))), None)
    out = ["no noise" if snr is None else next(name for top, name in NOISE_BANDS if snr <= top)]
    out.append("reverb" if any(p.startswith(("reverb", "rirfile")) for p in parts) else "no reverb")
    drr = next((float(m.group(1)) for p in parts if (m := _DRR.fullmatch(p))), None)
    if drr is not None:
        out.append(next(name for top, name in DRR_BANDS if drr < top))
    if "telephone" in parts:
        out.append("telephone")
    return out
