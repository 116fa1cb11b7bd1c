"""The experiment's timeline: when each stage started, across resumes, and how long each took.

``whisper-edge experiment`` appends one line per stage to OUT/timeline.tsv (wall-clock time, stage, ``started`` or
``skipped``). An invocation begins with an ``invocation`` line (before the corpus builds it may run first); timelines
written before that line existed begin each invocation with ``import``. A stage lasts until the next line of the same
invocation.
A stage whose invocation ended before it (a kill, a crash) has no end: it is listed as interrupted and left out of the
total, so the total is the time of the stages that ran in one piece.
"""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

__all__ = ["begin", "mark", "read", "durations", "section"]

FILE = "timeline.tsv"
BEGIN = "invocation"  # the line every invocation starts with
FIRST = "import"  # the first stage of every invocation (its start, in timelines written without BEGIN)
LAST = "results"  # the line written when results.json is
STOP = "stopped before the test splits"  # the line a --validation-only invocation ends with


def mark(out: Path, stage: str, skipped: bool) -> None:
    with open(Path(out) / FILE, "a", encoding="utf-8") as f:
        f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')}\t{stage}\t{'skipped' if skipped else 'started'}\n")


def begin(out: Path) -> None:
    """Mark the start of an invocation: what follows until the next BEGIN belongs to it."""
    mark(out, BEGIN, False)


def read(out: Path) -> list[list[str]]:
    path = Path(out) / FILE
    if not path.is_file():
        return []
    rows = [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]
    return [r for r in rows if len(r) == 3]


def durations(entries: list[list[str]]) -> list[dict]:
    """Each started stage with its seconds (None: its invocation ended before it did) and its invocation's number."""
    starts, begun = [], False  # whether each line starts an invocation
    for _, stage, _ in entries:
        starts.append(stage == BEGIN or (stage == FIRST and not begun))
        begun = stage == BEGIN or (begun and stage != FIRST)
    out, run = [], 0
    for i, (when, stage, status) in enumerate(entries):
        run += starts[i]
        if status != "started" or stage in (LAST, BEGIN, STOP):
            continue
        nxt = entries[i + 1] if i + 1 < len(entries) and not starts[i + 1] else None
        sec = (datetime.fromisoformat(nxt[0]) - datetime.fromisoformat(when)).total_seconds() if nxt else None
        out.append({"stage": stage, "start": when, "seconds": sec, "invocation": max(run, 1)})
    return out


def section(entries: list[list[str]]) -> list[str]:
    """The results.md section: each stage's wall time, and the total of those that ran in one piece."""
    rows = durations(entries)
    if not rows:
        return []
    runs = max(r["invocation"] for r in rows)
    done = [r["seconds"] for r in rows if r["seconds"] is not None]
    lines = ["", "## Wall time by stage (OUT/timeline.tsv)", "",
             f"Stages ran in {runs} invocation{'s' if runs > 1 else ''} (later ones that only skipped are not counted); a stage "
             "lasts until the next one starts. Stages whose invocation ended before them (killed or failed) are marked "
             "interrupted and left out of the total.", "",
             "| invocation | stage | started | minutes |", "|---:|---|---|---:|"]
    for r in rows:
        m = "interrupted" if r["seconds"] is None else f"{r['seconds'] / 60:.1f}"
        lines.append(f"| {r['invocation']} | {r['stage']} | {r['start']} | {m} |")
    lines += ["", f"Total of the stages that ran in one piece: **{sum(done) / 60:.1f} min**."]
    return lines
