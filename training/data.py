"""Speech dataset loaders. Every loader returns a ``datasets.Dataset`` with the columns
``audio`` (undecoded: {"bytes", "path"}) and ``sentence``, plus whatever else the source has.

Sources (``DATA``):
    a saved DatasetDict / Dataset        (``save_to_disk`` folder; whisper-edge data build writes one)
    an audiofolder                       (metadata.csv or metadata.jsonl with ``file_name`` + ``sentence``)
    a Common Voice release folder        (clips/ + train.tsv, dev.tsv, test.tsv …)
    a CSV/TSV manifest file              (columns path|file_name|audio and sentence|text|transcription)
    a hub id                             (e.g. mozilla-foundation/common_voice_11_0; needs network access)

Audio stays undecoded (``Audio(decode=False)``): datasets 5 decodes through torchcodec, which needs
FFmpeg; runtime.audio decodes with soundfile instead and resamples to 16 kHz mono.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path

__all__ = ["DataError", "SENTENCE_ALIASES", "load_speech_dataset", "long_copy", "noisy_copy", "row_audio"]

log = logging.getLogger("whisper_edge")

SENTENCE_ALIASES = ("sentence", "transcription", "transcript", "text", "normalized_text", "raw_transcription")
_PATH_ALIASES = ("file_name", "path", "audio", "audio_filepath", "filename")
_CV_SPLITS = {"train": "train.tsv", "validation": "dev.tsv", "dev": "dev.tsv", "test": "test.tsv",
              "validated": "validated.tsv", "other": "other.tsv", "invalidated": "invalidated.tsv"}


class DataError(ValueError):
    """A dataset that cannot be used; the message names the source and what to do."""


def _finish(ds, source: str):
    from datasets import Audio

    names = ds.column_names
    if "sentence" not in names:
        alias = next((a for a in SENTENCE_ALIASES if a in names), None)
        if alias is None:
            raise DataError(
                f"{source}: no transcript column; expected one of {', '.join(SENTENCE_ALIASES)}, "
                f"found {', '.join(names)}"
            )
        ds = ds.rename_column(alias, "sentence")
    if "audio" not in ds.column_names:
        raise DataError(f"{source}: no 'audio' column (found {', '.join(ds.column_names)})")
    ds = ds.cast_column("audio", Audio(decode=False))
    if len(ds) == 0:
        raise DataError(f"{source}: the dataset is empty")
    return ds


def _pick_split(dd, split: str, source: str):
    if split in dd:
        return dd[split]
    if split == "validation" and "dev" in dd:
        return dd["dev"]
    if len(dd) == 1:
        only = next(iter(dd))
        log.warning("%s has no split %r; using its only split %r", source, split, only)
        return dd[only]
    raise DataError(f"{source} has no split {split!r}; available: {', '.join(dd)} (use --split)")


def _from_rows(paths: list[str], sentences: list[str], extra: dict[str, list] | None = None):
    from datasets import Dataset

    cols = {"audio": paths, "sentence": sentences, **(extra or {})}
    return Dataset.from_dict(cols)


def _read_table(path: Path) -> list[dict]:
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter=delimiter, quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL))


def _load_common_voice_folder(root: Path, split: str):
    tsv = root / _CV_SPLITS.get(split, f"{split}.tsv")
    if not tsv.is_file():
        have = sorted(p.name for p in root.glob("*.tsv"))
        raise DataError(f"{root}: Common Voice split {split!r} needs {tsv.name}; found {', '.join(have) or 'no .tsv files'}")
    rows = _read_table(tsv)
    if rows and not {"path", "sentence"} <= set(rows[0]):
        raise DataError(f"{tsv}: expected Common Voice columns 'path' and 'sentence', found {', '.join(rows[0])}")
    paths = [str(root / "clips" / r["path"]) for r in rows]
    extra = {k: [r.get(k, "") for r in rows] for k in ("client_id", "gender", "accents") if rows and k in rows[0]}
    return _from_rows(paths, [r["sentence"] for r in rows], extra)


def _load_manifest(path: Path):
    rows = _read_table(path)
    if not rows:
        raise DataError(f"{path}: the manifest has no rows")
    cols = set(rows[0])
    pcol = next((c for c in _PATH_ALIASES if c in cols), None)
    scol = next((c for c in SENTENCE_ALIASES if c in cols), None)
    if pcol is None or scol is None:
        raise DataError(
            f"{path}: a manifest needs an audio path column ({'|'.join(_PATH_ALIASES)}) and a transcript "
            f"column ({'|'.join(SENTENCE_ALIASES)}); found {', '.join(sorted(cols))}"
        )
    base = path.parent
    paths = [str(p if Path(p := r[pcol]).is_absolute() else base / p) for r in rows]
    return _from_rows(paths, [r[scol] for r in rows])


def _load_audiofolder(root: Path):
    """An audiofolder: metadata.csv/.jsonl at the root (one split, "train"), or one per split folder.

    Read here rather than through datasets' "audiofolder" builder, whose datasets-5 audio encoder
    requires torchcodec (and FFmpeg) even when nothing is decoded.
    """
    import json

    from datasets import DatasetDict

    def one(folder: Path):
        if (folder / "metadata.csv").is_file():
            rows = _read_table(folder / "metadata.csv")
        else:
            with open(folder / "metadata.jsonl", encoding="utf-8") as f:
                rows = [json.loads(line) for line in f if line.strip()]
        if not rows:
            raise DataError(f"{folder}: metadata has no rows")
        if "file_name" not in rows[0]:
            raise DataError(f"{folder}: metadata needs a 'file_name' column, found {', '.join(rows[0])}")
        paths = [str(folder / r["file_name"]) for r in rows]
        extra = {k: [r.get(k) for r in rows] for k in rows[0] if k != "file_name"}
        from datasets import Dataset

        return Dataset.from_dict({"audio": paths, **extra})

    if any((root / m).is_file() for m in ("metadata.csv", "metadata.jsonl")):
        return DatasetDict({"train": one(root)})
    return DatasetDict({d.name: one(d) for d in sorted(root.iterdir()) if (d / "metadata.csv").is_file() or (d / "metadata.jsonl").is_file()})


def load_speech_dataset(data: str | Path, split: str = "test", *, config: str = "hi"):
    """Load ``data`` (see module docstring) and return the ``split`` as a Dataset."""
    import datasets

    source = str(data)
    path = Path(data)
    if path.is_dir():
        if (path / "dataset_dict.json").is_file():
            return _finish(_pick_split(datasets.load_from_disk(str(path)), split, source), source)
        if (path / "state.json").is_file():
            return _finish(datasets.load_from_disk(str(path)), source)
        if (path / "clips").is_dir() and any(path.glob("*.tsv")):
            return _finish(_load_common_voice_folder(path, split), source)
        if any((path / m).is_file() for m in ("metadata.csv", "metadata.jsonl")) or any(path.glob("*/metadata.csv")):
            return _finish(_pick_split(_load_audiofolder(path), split, source), source)
        raise DataError(
            f"{source}: not a dataset folder. Expected a saved DatasetDict (dataset_dict.json), an "
            "audiofolder (metadata.csv with file_name,sentence), or a Common Voice folder (clips/ + *.tsv)"
        )
    if path.is_file():
        if path.suffix.lower() in (".csv", ".tsv"):
            return _finish(_load_manifest(path), source)
        raise DataError(f"{source}: a manifest file must be .csv or .tsv")
    if "/" not in source or source.startswith((".", "/")):
        raise DataError(f"{source}: no such file or folder")
    try:
        ds = datasets.load_dataset(source, config, split=split)
    except Exception as exc:  # the hub raises many types; the message is what matters
        raise DataError(
            f"cannot load {source!r} (config {config!r}, split {split!r}) from the hub: {exc}\n"
            "Offline, point --data at a local folder (audiofolder, Common Voice release, or saved dataset)."
        ) from None
    return _finish(ds, source)


def row_audio(audio: dict):
    """The 16-kHz mono waveform of a dataset row's ``audio`` field (``Audio(decode=False)``: bytes, or a path)."""
    from ..runtime.audio import load_audio

    return load_audio(audio["bytes"] if audio.get("bytes") else audio["path"])


def noisy_copy(dataset, seed: int = 0):
    """``dataset`` with every clip under the corpus's test_noisy effects (0–10 dB SNR, mostly reverberant, some
    telephone band: training/corpus/augment.py HARD), one seeded draw per row; sentences and other columns kept.
    A noisy validation set for choices that must hold under noise (the test splits are read once)."""
    import datasets
    import numpy as np

    from .corpus.augment import HARD, augment
    from .corpus.build import _flac  # the corpus's own FLAC encoding of its test_noisy clips

    rows = []
    for i, row in enumerate(dataset):
        wav, applied = augment(row_audio(row["audio"]), HARD, np.random.default_rng([seed, 8, i]))
        rows.append(row | {"audio": {"bytes": _flac(wav), "path": (row["audio"] or {}).get("path") or f"{i}.flac"},
                           "augment": "+".join(applied)})  # the corpus's label format: WER by condition
    return datasets.Dataset.from_list(rows)


def long_copy(dataset, seed: int = 0, max_seconds: float = 10.0):
    """``dataset``'s clips joined as the corpus's test_long is built (2–4 clips in a seeded order with 0.3–0.9-s pauses,
    up to ``max_seconds``: one window, transcripts joined): a long-window validation set for choices about several
    sentences per window, while test_long stays unread. The clips' effect labels are dropped (a window mixes several)."""
    import datasets

    from ..runtime.audio import SAMPLE_RATE
    from .corpus.build import long_windows

    if any(str(x).startswith("long-") for x in (dataset["id"] if "id" in dataset.column_names else [])):
        raise ValueError("--long: this split's clips are already several utterances joined (test_long); drop --long")
    clips = []
    for i, row in enumerate(dataset):
        wav = row_audio(row["audio"])
        clips.append({"wav": wav, "seconds": len(wav) / SAMPLE_RATE, "sentence": row["sentence"],
                      "id": str(row.get("id") or f"clip-{i}"), "engine": row.get("engine") or "",
                      "voice": row.get("voice") or "", "voice_group": row.get("voice_group") or "seen"})
    rows = long_windows(clips, seed, max_seconds)
    if not rows:
        raise ValueError(f"--long: no two of the {len(clips)} clips fit one {max_seconds:g}-s window together; use more clips "
                         "(a larger --limit) or shorter ones")
    keep = {"audio", "sentence", "id", "seconds"} | (set(dataset.column_names) & {"engine", "voice", "voice_group"})
    return datasets.Dataset.from_list([{k: v for k, v in r.items() if k in keep} for r in rows])
