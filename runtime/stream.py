"""Streaming: audio of any length from a file or standard input, decoded in chunks with bounded memory.

    for seg in stream_segments(Transcriber("bundle/"), read_chunks(sys.stdin.buffer)):
        print(seg["start"], seg["text"])

:func:`read_chunks` reads a WAV stream (its header says rate, channels and sample format; a streamed WAV may
declare a data size of 0 or 0xFFFFFFFF, the rest of the stream is then the data) or raw PCM (16-bit little-endian
or 32-bit float, whose rate and channel count must be given: a raw stream does not say them). Every chunk is
mixed to mono and resampled to 16 kHz on its own.

:func:`stream_segments` keeps at most about one window of audio: voice activity (runtime/vad.py) is measured on
each new chunk; a speech region is decoded once a pause closes it (or when the buffer holds a whole window of
uninterrupted speech, cut at its quietest point), its segment is emitted, and the audio before it is dropped.
Silence is dropped without decoding. Timestamps count from the start of the stream. An interrupted stream
(end of input, Ctrl-C upstream, a truncated final frame) ends with the regions heard so far decoded: segments
already emitted stay emitted.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterator

import numpy as np

from .audio import SAMPLE_RATE, AudioError, to_mono_16k

__all__ = ["read_chunks", "stream_segments", "PCM_FORMATS"]

log = logging.getLogger("whisper_edge")

PCM_FORMATS = {"s16le": ("<i2", 2), "f32le": ("<f4", 4)}


def _read_exact(stream, n: int) -> bytes:
    data = b""
    while len(data) < n:
        part = stream.read(n - len(data))
        if not part:
            break
        data += part
    return data


def _wav_header(stream) -> tuple[int, int, str]:
    """(rate, channels, pcm format) from a RIFF/WAVE stream, positioned at the first data byte."""
    head = _read_exact(stream, 12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        raise AudioError("the stream is not a WAV stream (no RIFF/WAVE header); for raw PCM give --rate and --channels")
    fmt = None
    while True:
        ch = _read_exact(stream, 8)
        if len(ch) < 8:
            raise AudioError("the WAV stream ended before its data chunk")
        cid, size = ch[:4], struct.unpack("<I", ch[4:])[0]
        if cid == b"fmt ":
            body = _read_exact(stream, size + (size & 1))
            tag, channels, rate = struct.unpack("<HHI", body[:8])
            bits = struct.unpack("<H", body[14:16])[0]
            if tag == 0xFFFE and len(body) >= 26:  # WAVE_FORMAT_EXTENSIBLE: the sub-format's first two bytes
                tag = struct.unpack("<H", body[24:26])[0]
            fmt = {(1, 16): "s16le", (3, 32): "f32le"}.get((tag, bits))
            if fmt is None:
                raise AudioError(f"WAV stream with format tag {tag} and {bits}-bit samples: streaming reads 16-bit PCM or "
                                 "32-bit float (convert with: ffmpeg -i IN -f wav -acodec pcm_s16le -)")
        elif cid == b"data":
            if fmt is None:
                raise AudioError("the WAV stream's data chunk comes before its fmt chunk")
            return rate, channels, fmt
        else:
            _read_exact(stream, size + (size & 1))


def read_chunks(stream, *, wav: bool = True, rate: int | None = None, channels: int | None = None,
                pcm: str = "s16le", chunk_s: float = 2.0) -> Iterator[np.ndarray]:
    """16-kHz mono float32 chunks of about ``chunk_s`` seconds from a binary ``stream``."""
    if wav:
        rate, channels, pcm = _wav_header(stream)
    elif not rate or not channels:
        raise AudioError("raw PCM on a stream does not say its sample rate or channel count: give both "
                         "(--rate 16000 --channels 1), or send a WAV stream")
    if pcm not in PCM_FORMATS:
        raise AudioError(f"raw PCM format {pcm!r} is not read; choose from {', '.join(PCM_FORMATS)}")
    if not 1 <= channels <= 8 or not 1000 <= rate <= 384_000:
        raise AudioError(f"{channels} channels at {rate} Hz is not a usable stream")
    dtype, width = PCM_FORMATS[pcm]
    frame = width * channels
    want = max(1, int(chunk_s * rate)) * frame
    rest = b""
    while True:
        data = rest + _read_exact(stream, want - len(rest))
        if not data:
            return
        usable = len(data) - len(data) % frame
        rest = data[usable:]
        if usable:
            x = np.frombuffer(data[:usable], dtype=dtype).reshape(-1, channels)
            if dtype == "<i2":
                x = x.astype(np.float32) / 32768.0
            yield to_mono_16k(x if channels > 1 else x[:, 0], rate, source="stream")
        if len(data) < want:  # end of the stream
            if rest:
                log.warning("the stream ended inside a sample frame: its last %d bytes were dropped", len(rest))
            return


def stream_segments(tr, chunks, *, options=None, vad=None) -> Iterator[dict]:
    """Segments (as Transcriber.transcribe_segments gives them) as soon as they are final."""
    from .transcribe import DecodeOptions
    from .vad import FRAME, VadOptions, loud_level, plan_windows, speech_probs, speech_regions

    options = tr._capped(options or DecodeOptions())
    vad = vad or VadOptions()
    window = tr.n_samples
    quiet_after = int(vad.min_silence_s * SAMPLE_RATE)
    buf = np.zeros(0, np.float32)
    probs = np.zeros(0, np.float32)
    base = 0  # stream position (samples) of buf[0]
    tr.last_vad = "off" if vad.method == "off" else None
    tr.stream_stats = {"max_buffer_s": 0.0, "seconds": 0.0}  # what memory is bounded by, for tests and docs

    def segments(s: int, e: int) -> list[dict]:
        return tr.window_segments(buf[s:e], (base + s) / SAMPLE_RATE, options)

    def drain(final: bool) -> Iterator[dict]:
        nonlocal buf, probs, base
        while len(buf):
            if vad.method == "off":
                if len(buf) < window and not final:
                    return
                cut = min(window, len(buf))
                if cut >= 0.2 * SAMPLE_RATE or base == 0:
                    yield from segments(0, cut)
            else:
                regions = speech_regions(probs, vad)
                closed = regions if final else [r for r in regions if r[1] <= len(buf) - quiet_after]
                if closed:
                    spans = plan_windows(closed, probs, window, vad.pack)
                    cut = closed[-1][1]
                elif regions and len(buf) >= window:  # a window of speech without a pause: cut at its quietest point
                    spans = plan_windows([(regions[0][0], len(buf))], probs, window, False)[:1]
                    cut = spans[0][1]
                elif not regions and (final or len(buf) > window):  # silence: dropped, a little kept for an onset
                    spans, cut = [], len(buf) if final else len(buf) - quiet_after
                else:
                    return
                for s, e in spans:
                    yield from segments(s, e)
                cut = max(FRAME, cut // FRAME * FRAME) if cut < len(buf) else len(buf)
            buf, probs = buf[cut:], probs[cut // FRAME:]
            base += cut

    pending = np.zeros(0, np.float32)  # samples not yet a whole VAD frame
    level = -120.0  # the loudest level heard so far: the energy detector's reference across chunks
    carry: dict = {}  # Silero's recurrent state and context, continued from chunk to chunk
    for chunk in chunks:
        if vad.method != "off":
            pending = np.concatenate([pending, chunk])
            n = len(pending) // FRAME * FRAME
            if n:
                level = max(level, loud_level(pending[:n]))
                p, tr.last_vad = speech_probs(pending[:n], vad.method, level, carry)
                probs = np.concatenate([probs, p[: n // FRAME]])
                buf = np.concatenate([buf, pending[:n]])
                pending = pending[n:]
        else:
            buf = np.concatenate([buf, chunk])
        tr.stream_stats["seconds"] += len(chunk) / SAMPLE_RATE
        tr.stream_stats["max_buffer_s"] = max(tr.stream_stats["max_buffer_s"], (len(buf) + len(pending)) / SAMPLE_RATE)
        yield from drain(final=False)
    if len(pending):
        p, tr.last_vad = speech_probs(np.pad(pending, (0, FRAME - len(pending))), vad.method, level, carry)
        probs = np.concatenate([probs, p[:1]])
        buf = np.concatenate([buf, pending])
    yield from drain(final=True)
