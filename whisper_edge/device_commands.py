"""The commands that run on the device: ``transcribe`` (files, batches, streams). Torch-free: they import only
whisper_edge.runtime."""

from __future__ import annotations

import sys
from pathlib import Path


def _cmd_transcribe(args) -> int:
    from .runtime.transcribe import DecodeOptions, Transcriber

    settings = {}
    if args.profile:
        from .runtime.profiles import load_profile

        prof = load_profile(args.profile)
        settings = {"threads": prof.threads, "providers": prof.providers, "session_options": prof.session_options()}
    if args.threads:
        settings["threads"] = args.threads
    if args.audio_window:
        settings["session_options"] = settings.get("session_options", {}) | {"audio_window": args.audio_window}
    tr = Transcriber(args.bundle, **settings)
    try:
        temps = tuple(float(t) for t in args.temperatures.split(",") if t.strip())
    except ValueError:
        raise ValueError(f"--temperatures must be comma-separated numbers, got {args.temperatures!r}") from None
    opts = DecodeOptions(beam=args.beam, max_new_tokens=args.max_new_tokens, language=args.language,
                         repetition_guard=args.repetition_guard, restart_guard=args.restart_guard, temperatures=temps,
                         compression_ratio_threshold=args.compression_ratio_threshold or None,
                         logprob_threshold=args.logprob_threshold, no_speech_threshold=args.no_speech_threshold or None,
                         timestamps=args.model_timestamps)
    from .runtime.fsutil import atomic_write_text
    from .runtime.subtitles import FORMATS, render
    from .runtime.vad import VadOptions

    vad = VadOptions(method=args.vad, pack=args.vad_pack)
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad:
        raise ValueError(f"--format: unknown {bad}; choose from {', '.join(FORMATS)} (comma-separated for several)")
    if args.stream:
        return _stream(tr, args, opts, vad, formats)
    if args.raw or "-" in args.audio:
        raise ValueError("standard input (-) and --raw are read with --stream")
    failed = 0
    for path in args.audio:
        try:
            segments = tr.transcribe_segments(path, options=opts, vad=vad)
        except (ValueError, OSError) as exc:  # one bad file is reported; the others are still transcribed
            print(f"whisper-edge: {path}: {exc}", file=sys.stderr)
            failed += 1
            continue
        if args.output_dir in (None, "-"):
            for fmt in formats:
                text = render(segments, fmt, source=str(path), detector=tr.last_vad)
                sys.stdout.write(f"{path}\t{text}" if fmt == "txt" and len(args.audio) > 1 else text)
        else:
            out = Path(args.output_dir)
            for fmt in formats:
                atomic_write_text(out / f"{Path(path).stem}.{fmt}", render(segments, fmt, source=str(path), detector=tr.last_vad))
    if failed:
        print(f"whisper-edge: {failed} of {len(args.audio)} files failed", file=sys.stderr)
    return 1 if failed else 0


def _stream(tr, args, opts, vad, formats) -> int:
    """transcribe --stream: segments printed as they are final (one format on standard output)."""
    from .runtime.audio import AudioError
    from .runtime.stream import read_chunks, stream_segments
    from .runtime.subtitles import render_one, stream_header

    if len(formats) != 1 or args.output_dir not in (None, "-"):
        raise ValueError("--stream prints one --format on standard output as it goes (no --output-dir)")
    fmt = formats[0]
    failed = 0
    for path in args.audio:
        src = sys.stdin.buffer if path == "-" else None
        try:
            src = src or open(path, "rb")
        except OSError as exc:
            print(f"whisper-edge: {path}: {exc}", file=sys.stderr)
            failed += 1
            continue
        sys.stdout.write(stream_header(fmt))
        index = 0
        try:
            chunks = read_chunks(src, wav=not args.raw, rate=args.rate, channels=args.channels, pcm=args.raw or "s16le")
            for seg in stream_segments(tr, chunks, options=opts, vad=vad):
                index += bool(seg["text"])
                sys.stdout.write(render_one(seg, fmt, index))
                sys.stdout.flush()
        except (AudioError, ValueError, OSError) as exc:  # what was emitted stays emitted
            print(f"whisper-edge: {path}: {exc}", file=sys.stderr)
            failed += 1
        except KeyboardInterrupt:
            print(f"whisper-edge: {path}: interrupted after {index} segments", file=sys.stderr)
            return 130
        finally:
            if src is not sys.stdin.buffer:
                src.close()
    return 1 if failed else 0
