"""The ``data`` commands: build a corpus, extract text for it, join long recordings, cut clips."""

from __future__ import annotations

from pathlib import Path


def _cmd_data_build(args) -> int:
    from .training.corpus.build import BuildOptions, build_corpus

    kw = {"seed": args.seed, "augment": args.augment, "jobs": args.jobs, "text": args.text,
          "exclude": tuple(args.exclude_corpus), "test_only": args.test_only,
          "validation_only": args.validation_only}
    if args.engines:
        kw["engines"] = tuple(e.strip() for e in args.engines.split(",") if e.strip())
    if args.utterances:
        kw["utterances"] = args.utterances
    for field in ("kokoro_share", "test_share", "validation_share", "long_seconds"):
        if getattr(args, field) is not None:
            kw[field] = getattr(args, field)
    opts = BuildOptions.small(Path(args.out), **kw) if args.small else BuildOptions(out=Path(args.out), **kw)
    summary = build_corpus(opts, overwrite=args.overwrite)
    print((Path(args.out) / "README.md").read_text().split("\n## Voices")[0])
    print(f"wrote {args.out} in {summary['synthesis_seconds']:.0f} s")
    return 0


def _cmd_data_text(args) -> int:
    from .runtime.fsutil import atomic_write_text
    from .training.corpus.sources import extract_sentences

    if args.out.exists() and not args.overwrite:
        raise ValueError(f"{args.out} exists: pass --overwrite to replace it, or choose another --out")
    got = extract_sentences(args.sources, limit=args.limit)
    for line in got.unreadable:
        print(f"skipped (unreadable): {line}")
    if not got.sentences:
        raise ValueError(f"no readable Hindi sentence in {', '.join(map(str, args.sources))} (dropped: {dict(got.dropped)}); "
                         "give HTML/XHP pages, .po, .ftl or .properties files, or a package that holds them")
    head = [f"# {len(got.sentences)} sentences extracted by 'whisper-edge data text' from: {', '.join(map(str, args.sources))}",
            "# Their licence is their source's (for Debian's libreoffice-help-hi: MPL-2.0)."]
    atomic_write_text(args.out, "\n".join(head + got.sentences) + "\n")
    print(f"wrote {args.out}: {len(got.sentences)} sentences; dropped {sum(got.dropped.values())} "
          f"({', '.join(f'{k} {v}' for k, v in got.dropped.most_common())}). Use it: whisper-edge data build --text {args.out} …")
    return 0


def _cmd_data_long(args) -> int:
    from .training.corpus.longform import make_long_recordings, make_nonspeech

    if args.nonspeech:
        out = make_nonspeech(args.out, seconds=args.seconds, overwrite=args.overwrite)
        print(f"wrote {out}: silence, room, noise, hum ({args.seconds:.0f} s each, empty transcripts)")
        return 0
    if not args.corpus:
        raise ValueError("data long needs --corpus (a corpus from 'data build'), or --nonspeech")
    out = make_long_recordings(args.corpus, args.out, count=args.count, seconds=args.seconds, overwrite=args.overwrite,
                               max_gap=args.max_gap)
    print(f"wrote {out} (an audiofolder: bench it with 'whisper-edge bench --data {out} --vad silero')")
    return 0


def _cmd_data_clips(args) -> int:
    from .training.corpus.longform import make_clips

    out = make_clips(args.corpus, args.out, split=args.split, limit=args.limit, overwrite=args.overwrite)
    print(f"wrote {out} (an audiofolder)")
    return 0
