"""Transcript formats: txt, json, srt, vtt, tsv — from the segments of ``Transcriber.transcribe_segments``."""

from __future__ import annotations

import json

__all__ = ["FORMATS", "render", "stream_header", "render_one"]

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
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
    return stream_header(fmt) + "".join(render_one(s, fmt, i) for i, s in enumerate(spoken, 1))


def stream_header(fmt: str) -> str:
    """What a transcript in ``fmt`` starts with (its segments follow one by one, render_one)."""
    return {"vtt": "WEBVTT\n\n", "tsv": "start\tend\ttext\n"}.get(fmt, "")


def render_one(seg: dict, fmt: str, index: int) -> str:
    """One segment as soon as it is final: a line of text, an SRT cue numbered ``index``, a VTT cue, a TSV row, or
    a JSON line (a streamed json transcript is JSON Lines: one segment object per line)."""
    if fmt == "json":
        return json.dumps(seg, ensure_ascii=False) + "\n"
    if not seg["text"]:
        return ""
    if fmt == "txt":
        return seg["text"] + "\n"
    if fmt == "srt":
        return f"{index}\n{_clock(seg['start'], ',')} --> {_clock(seg['end'], ',')}\n{seg['text']}\n\n"
    if fmt == "vtt":
        return f"{_clock(seg['start'], '.')} --> {_clock(seg['end'], '.')}\n{seg['text']}\n\n"
    if fmt == "tsv":
        return f"{int(seg['start'] * 1000)}\t{int(seg['end'] * 1000)}\t{seg['text']}\n"
    raise ValueError(f"unknown format {fmt!r}; choose from {', '.join(FORMATS)}")
