"""Which group each tested utterance of a run belongs to: a column of the corpus it came from (engine, voice_group,
voice, augment …), for ``whisper-edge compare --by COLUMN``: where the compressed model loses its words.

A run's results.json keeps, per split, every utterance's id with its word errors; the corpora its config names
(``data`` for test, test_noisy and test_long; ``eval.extra_test`` for the extra test set, whose ids carry the
``extra_test/`` prefix) map those ids to the column. Only the ``id`` and the asked column are read, never the audio.
"""
from __future__ import annotations

from pathlib import Path

from .evaluation import EXTRA, POOLED
from .experiment_config import with_defaults

__all__ = ["utterance_groups"]


def utterance_groups(res: dict, column: str, cache: dict | None = None) -> dict[str, dict[str, str]]:
    """Per split label of results.json (test, test_noisy, test_long, extra_test, test+extra_test): utterance id →
    ``column``'s value. ``cache`` (keyed by corpus, split and column) spares re-reading a corpus several runs share."""
    cache = {} if cache is None else cache
    cfg = with_defaults(res.get("config") or {})
    if not cfg.get("data"):
        raise ValueError("a run's results.json records no config (the experiment has not finished), so the corpora "
                         "it was tested on are unknown: --by needs finished runs")
    sources = {split: (cfg["data"], split, "") for split in ("test", "test_noisy", "test_long")}
    if extra := (cfg.get("eval") or {}).get("extra_test"):
        sources[EXTRA] = (extra, "test", f"{EXTRA}/")
    out = {}
    for label, (path, split, prefix) in sources.items():
        key = (str(path), split, column)
        if key not in cache:
            cache[key] = _column(Path(path), split, column)
        if cache[key] is not None:
            out[label] = {prefix + i: v for i, v in cache[key].items()}
    if "test" in out and EXTRA in out:
        out[POOLED] = out["test"] | out[EXTRA]
    return out


def _column(path: Path, split: str, column: str) -> dict[str, str] | None:
    """``column`` of the corpus's ``split`` by id (None where the corpus has no such split)."""
    import datasets

    if not (path / "dataset_dict.json").is_file():
        raise FileNotFoundError(f"{path}: the corpus a run was tested on is not here (its config names it, relative to "
                                "the folder the experiment ran in); run compare from that folder, or rebuild the corpus "
                                "with the run's config (`whisper-edge experiment --config` builds what its build section names)")
    corpus = datasets.load_from_disk(str(path))
    if split not in corpus:
        return None
    ds = corpus[split]
    if column not in ds.column_names or column == "audio":
        usable = ", ".join(c for c in ds.column_names if c not in ("audio", "id", "sentence"))
        raise ValueError(f"--by {column}: {path} split {split} has no such column; its columns to group by: {usable}")
    return dict(zip(ds["id"], (str(v) for v in ds[column])))
