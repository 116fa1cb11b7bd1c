"""Long recordings for the long-form bench: clean test utterances joined into minute-long WAV files with pauses.

``whisper-edge data long --corpus runs/corpus --out runs/long60`` writes an audiofolder (WAV files + metadata.csv with
file_name, sentence) that the torch-free bench reads: ``whisper-edge bench --data runs/long60 --vad silero|off``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import soundfile as sf

from ...runtime.fsutil import atomic_dir

__all__ = ["make_long_recordings"]


def make_long_recordings(corpus, out, *, count: int = 6, seconds: float = 60.0, split: str = "test_clean",
                         seed: int = 0, overwrite: bool = False) -> Path:
    from ..data import load_speech_dataset

    ds = load_speech_dataset(corpus, split)
    rng = np.random.default_rng(seed)
    rows, k = [], 0
    with atomic_dir(out, kind="long-recordings", overwrite=overwrite, inputs=[corpus]) as tmp:
        for rec in range(count):
            parts, texts, total = [], [], 0.0
            while total < seconds - 5 and k < len(ds):
                a = ds[k]["audio"]
                x, sr = sf.read(io.BytesIO(a["bytes"]) if a.get("bytes") else a["path"], dtype="float32")
                gap = np.zeros(int(rng.uniform(0.3, 0.9) * sr), np.float32)
                parts += [x, gap]
                texts.append(ds[k]["sentence"])
                total += (len(x) + len(gap)) / sr
                k += 1
            if not parts:
                break
            sf.write(tmp / f"long{rec}.wav", np.concatenate(parts), sr)
            rows.append((f"long{rec}.wav", " ".join(texts)))
        if not rows:
            raise ValueError(f"{corpus}: split {split} has no utterances to join")
        with open(tmp / "metadata.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["file_name", "sentence"])
            w.writerows(rows)
    return Path(out)
