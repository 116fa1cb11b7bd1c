"""The experiment's ``build`` section: the corpora a run needs, built (or resumed) by the run itself.

``build: {runs/corpus: {utterances: 2400, kokoro_share: 0.25}, runs/extra-test: {utterances: 600, ...}}`` names each
corpus folder with the fields of ``whisper-edge data build`` (training/corpus/build.py, BuildOptions); folders are built
in the order given, so an extra test set can exclude the corpus built before it. A finished corpus is used as it is
when it was built with the same settings, and refused, with the settings that differ, when it was not: a run never
silently trains on another corpus than its config describes. Runs and corpora vanish with a machine; with this section
one command rebuilds all of it (recipes/replicate.yaml).
"""
from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .training.corpus.build import BuildOptions

__all__ = ["build_options", "pending_builds"]


def build_options(folder: str, spec) -> BuildOptions:
    """BuildOptions for ``folder`` from the config's mapping ``spec``; a misspelt or out-of-range field is named."""
    from .training.corpus.build import BuildOptions

    where = f"build.{folder}"
    if not isinstance(spec, dict):
        raise ValueError(f"{where} must be a mapping of `data build` settings (e.g. {{utterances: 2400}}), got {spec!r}")
    allowed = [f.name for f in fields(BuildOptions) if f.name not in ("out", "jobs")]
    bad = sorted(set(spec) - set(allowed))
    if bad:
        raise ValueError(f"{where}: unknown setting {bad[0]!r}; allowed: {', '.join(allowed)}")
    kw = dict(spec)
    if "engines" in kw:
        kw["engines"] = tuple(kw["engines"])
    if "exclude" in kw:
        kw["exclude"] = tuple(Path(p) for p in kw["exclude"])
    if kw.get("text") is not None:
        kw["text"] = Path(kw["text"])
    try:
        return BuildOptions(out=Path(folder), **kw)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def pending_builds(build: dict | None) -> list:
    """The corpora of ``build`` still to build or finish, in order. A finished one built with other settings is
    refused with what differs."""
    from .training.corpus.build import build_settings, settings_differ

    todo = []
    for folder, spec in (build or {}).items():
        opts = build_options(folder, spec)
        summary = Path(folder) / "summary.json"
        if not ((Path(folder) / "dataset_dict.json").is_file() and summary.is_file()):
            todo.append(opts)
            continue
        have = json.loads(summary.read_text(encoding="utf-8")).get("settings", {})
        want = build_settings(opts)
        differ = settings_differ(have, want)
        if differ:
            shown = "; ".join(f"{k}: built {have.get(k, 'the default')!r}, config {want[k]!r}" for k in differ)
            raise ValueError(f"{folder} is a corpus built with other settings than the config's build section asks "
                             f"({shown}): give the build another folder, or move this one away yourself")
    return todo
