"""Dereverberation by weighted prediction error (WPE), single channel, numpy only.

Late reverberation is, frame by frame in the STFT domain, largely predictable from the frames some tens of
milliseconds before; the direct sound and early reflections are not. WPE (Nakatani et al. 2010, "Speech
dereverberation based on variance-normalized delayed linear prediction"; Yoshioka & Nakatani 2012) estimates, per
frequency bin, a delayed linear predictor ``g`` (``taps`` past frames, skipping the ``delay`` most recent) that
minimises the prediction residual weighted by the inverse of the desired signal's power, and subtracts the predicted
tail:

    d_t = y_t − gᴴ ỹ_t,   ỹ_t = [y_{t−delay}, …, y_{t−delay−taps+1}],   g = R⁻¹ p,
    R = Σ_t ỹ_t ỹ_tᴴ / λ_t,   p = Σ_t ỹ_t y_t* / λ_t,   λ_t = |d_t|² (from the previous iteration; |y_t|² first).

It is the front end the REVERB and CHiME challenge systems used before recognition. A linear filter per bin: it
removes the late tail of a room and leaves speech and stationary noise in place. Cost: one STFT, ``iterations``
solves of a ``taps × taps`` system per bin, one inverse STFT (tens of ms for a 10-s clip).
"""

from __future__ import annotations

import numpy as np

__all__ = ["wpe", "stft", "istft"]


def stft(x: np.ndarray, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """(frames, bins) complex STFT of ``x`` with a periodic Hann window, centred (``n_fft // 2`` zeros each side)."""
    win = np.hanning(n_fft + 1)[:-1]
    pad = np.pad(np.asarray(x, np.float64), (n_fft // 2, n_fft // 2 + hop))
    frames = np.lib.stride_tricks.sliding_window_view(pad, n_fft)[::hop] * win
    return np.fft.rfft(frames, axis=1)


def istft(spec: np.ndarray, length: int, n_fft: int = 512, hop: int = 128) -> np.ndarray:
    """Inverse of :func:`stft` (weighted overlap-add), cut to ``length`` samples."""
    win = np.hanning(n_fft + 1)[:-1]
    frames = np.fft.irfft(spec, n_fft, axis=1) * win
    n = hop * (len(frames) - 1) + n_fft
    y, norm = np.zeros(n), np.zeros(n)
    for k in range(n_fft // hop):  # frames k, k + n_fft/hop, … do not overlap: add each such set at once
        idx = np.arange(k, len(frames), n_fft // hop)
        if len(idx) == 0:
            continue
        starts = idx * hop
        cols = starts[:, None] + np.arange(n_fft)
        y[cols.ravel()] += frames[idx].ravel()
        norm[cols.ravel()] += np.tile(win ** 2, len(idx))
    y = y / np.maximum(norm, 1e-8)
    return y[n_fft // 2: n_fft // 2 + length]


def wpe(x: np.ndarray, *, taps: int = 10, delay: int = 3, iterations: int = 3, n_fft: int = 512, hop: int = 128,
        eps: float = 1e-10) -> np.ndarray:
    """``x`` (16-kHz mono) with its late reverberation removed; same length and dtype float32.

    ``taps`` × ``hop`` / 16 kHz is the span of the tail predicted (80 ms at the defaults), ``delay`` × ``hop`` the
    early part left alone (24 ms). A clip shorter than the predictor is returned unchanged."""
    if taps < 1 or delay < 1 or iterations < 1:
        raise ValueError(f"wpe: taps, delay and iterations must be ≥ 1, got {taps}, {delay}, {iterations}")
    x = np.asarray(x, np.float32)
    y = stft(x, n_fft, hop).T  # (bins, frames)
    bins, frames = y.shape
    if frames <= delay + taps:
        return x
    # ỹ: (bins, frames, taps), ỹ[f, t, k] = y[f, t − delay − k] (zero before the start)
    padded = np.concatenate([np.zeros((bins, delay + taps - 1), y.dtype), y], axis=1)
    tilde = np.stack([padded[:, taps - 1 - k: taps - 1 - k + frames] for k in range(taps)], axis=2)
    d = y
    floor = eps * max(float(np.max(np.abs(y) ** 2)), 1e-20)
    for _ in range(iterations):
        weight = 1.0 / np.maximum(np.abs(d) ** 2, floor)  # (bins, frames)
        wt = tilde * weight[:, :, None]
        r = np.einsum("ftk,ftl->fkl", wt, tilde.conj())
        p = np.einsum("ftk,ft->fk", wt, y.conj())
        r += (1e-6 * np.trace(r, axis1=1, axis2=2).real / taps + 1e-20)[:, None, None] * np.eye(taps)
        g = np.linalg.solve(r, p[:, :, None])[:, :, 0]  # (bins, taps)
        d = y - np.einsum("fk,ftk->ft", g.conj(), tilde)
    return istft(d.T, len(x), n_fft, hop).astype(np.float32)
