"""Long recordings for the long-form bench: clean test utterances joined into minute-long WAV files with pauses.

``whisper-edge data long --corpus runs/corpus --out runs/long60`` writes an audiofolder (WAV files + metadata.csv with
file_name, sentence) that the torch-free bench reads: ``whisper-edge bench --data runs/long60 --vad silero|off``.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import soundfile as sf

from ...runtime.fsutil import atomic_dir

__all__ = ["make_clips", "make_long_recordings", "make_nonspeech"]


def _read(audio: dict) -> tuple[np.ndarray, int]:
    """A dataset row's ``audio`` field (bytes or a path) at its own sample rate."""
    return sf.read(io.BytesIO(audio["bytes"]) if audio.get("bytes") else audio["path"], dtype="float32")


def _write_metadata(folder: Path, rows: list[tuple[str, str]]) -> None:
    """An audiofolder's metadata.csv: file_name, sentence."""
    with open(folder / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file_name", "sentence"])
        w.writerows(rows)


def make_nonspeech(out, *, seconds: float = 60.0, seed: int = 0, overwrite: bool = False) -> Path:
    """An audiofolder of recordings with no speech (empty transcripts): digital silence, a quiet room (white noise at
    −50 dBFS), loud noise (−25 dBFS) and mains hum with noise. What a model writes on them is hallucination."""
    rng = np.random.default_rng(seed)
    n, sr = int(seconds * 16000), 16000
    t = np.arange(n) / sr

    def db(level):
        return 10 ** (level / 20)

    kinds = {"silence": np.zeros(n), "room": db(-50) * rng.standard_normal(n), "noise": db(-25) * rng.standard_normal(n),
             "hum": db(-30) * (np.sin(2 * np.pi * 50 * t) + 0.5 * np.sin(2 * np.pi * 150 * t)) + db(-55) * rng.standard_normal(n)}
    with atomic_dir(out, kind="long-recordings", overwrite=overwrite) as tmp:
        for name, x in kinds.items():
            sf.write(tmp / f"{name}.wav", x.astype(np.float32), sr)
        _write_metadata(tmp, [(f"{k}.wav", "") for k in kinds])
    return Path(out)


def make_clips(corpus, out, *, split: str = "test", limit: int | None = None, overwrite: bool = False) -> Path:
    """The first ``limit`` utterances of a corpus split as an audiofolder (WAV files + metadata.csv), for machines
    without the ``datasets`` library: the arm64 check, a bench on a device."""
    from ..data import load_speech_dataset

    ds = load_speech_dataset(corpus, split)
    n = min(len(ds), limit) if limit else len(ds)
    if n == 0:
        raise ValueError(f"{corpus}: split {split} is empty")
    with atomic_dir(out, kind="clips", overwrite=overwrite, inputs=[corpus]) as tmp:
        rows = []
        for i in range(n):
            a = ds[i]["audio"]
            x, sr = _read(a)
            sf.write(tmp / f"{split}-{i:04d}.wav", x, sr)
            rows.append((f"{split}-{i:04d}.wav", ds[i]["sentence"]))
        _write_metadata(tmp, rows)
    return Path(out)


def make_long_recordings(corpus, out, *, count: int = 6, seconds: float = 60.0, split: str = "test_clean",
                         seed: int = 0, overwrite: bool = False, max_gap: float = 0.9) -> Path:
    """``count`` recordings of about ``seconds`` each: utterances of ``split`` in order (from the start again when
    they run out) with pauses of 0.3–``max_gap`` s; the references are the utterances' sentences joined, and
    utterances.json holds each utterance's start and end (s) per file: the truth for timestamp errors."""
    from ..data import load_speech_dataset

    ds = load_speech_dataset(corpus, split)
    rng = np.random.default_rng(seed)
    rows, k, utterances = [], 0, {}
    with atomic_dir(out, kind="long-recordings", overwrite=overwrite, inputs=[corpus]) as tmp:
        for rec in range(count):
            parts, texts, spans, total = [], [], [], 0.0
            while total < seconds - 5 and len(ds):
                a = ds[k % len(ds)]["audio"]
                x, sr = _read(a)
                gap = np.zeros(int(rng.uniform(0.3, max(0.3, max_gap)) * sr), np.float32)
                parts += [x, gap]
                texts.append(ds[k % len(ds)]["sentence"])
                spans.append({"start": round(total, 3), "end": round(total + len(x) / sr, 3), "text": texts[-1]})
                total += (len(x) + len(gap)) / sr
                k += 1
            if not parts:
                break
            sf.write(tmp / f"long{rec}.wav", np.concatenate(parts), sr)
            rows.append((f"long{rec}.wav", " ".join(texts)))
            utterances[f"long{rec}.wav"] = spans
        if not rows:
            raise ValueError(f"{corpus}: split {split} has no utterances to join")
        (tmp / "utterances.json").write_text(json.dumps(utterances, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        _write_metadata(tmp, rows)
    return Path(out)
