"""Transcript formats: txt, json, srt, vtt, tsv — from the segments of ``Transcriber.transcribe_segments``."""

from __future__ import annotations

import json

__all__ = ["FORMATS", "render"]

FORMATS = ("txt", "json", "srt", "vtt", "tsv")


def _clock(t: float, sep: str) -> str:
    ms = int(round(t * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d}{sep}{ms:03d}"


def render(segments: list[dict], fmt: str, *, source: str = "", detector: str = "") -> str:
    """One transcript in ``fmt``; segments without text are left out of the subtitle formats."""
    spoken = [s for s in segments if s["text"]]
    if fmt == "txt":
        return " ".join(s["text"] for s in spoken) + "\n"
    if fmt == "json":
        return json.dumps({"source": source, "vad": detector, "text": " ".join(s["text"] for s in spoken),
                           "segments": segments}, ensure_ascii=False, indent=2) + "\n"
    if fmt == "srt":
        return "".join(f"{i}\n{_clock(s['start'], ',')} --> {_clock(s['end'], ',')}\n{s['text']}\n\n"
                       for i, s in enumerate(spoken, 1))
    if fmt == "vtt":
        return "WEBVTT\n\n" + "".join(f"{_clock(s['start'], '.')} --> {_clock(s['end'], '.')}\n{s['text']}\n\n" for s in spoken)
    if fmt == "tsv":
        return "start\tend\ttext\n" + "".join(f"{int(s['start'] * 1000)}\t{int(s['end'] * 1000)}\t{s['text']}\n" for s in spoken)
    raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
