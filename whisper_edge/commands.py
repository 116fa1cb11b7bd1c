"""The CLI's commands: each parses nothing, calls one library function and prints (whisper_edge/cli.py builds the
parser and dispatches here). Heavy imports (torch, transformers) happen inside the command that needs them, so the
torch-free commands (normalize, transcribe, bundle, a bench of our bundles) work with the base dependencies alone."""

from __future__ import annotations

import json
import sys
from pathlib import Path


def _cmd_normalize(args) -> int:
    """One output line per input line, always: a line that cannot be decoded or normalized is reported on
    stderr (with its number) and written as an empty line, and the rest of the stream goes on."""
    from .runtime.normalize import normalize

    data = sys.stdin.buffer if hasattr(sys.stdin, "buffer") else None
    raw = data.read() if data is not None else sys.stdin.read().encode("utf-8")
    encoding = "utf-8"
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        encoding = "utf-16"  # a BOM says UTF-16 (Windows editors); decode it instead of printing garbage
    elif raw[:3] == b"\xef\xbb\xbf":
        raw = raw[3:]
    lines = raw.decode("utf-16").splitlines() if encoding == "utf-16" else raw.split(b"\n")
    if encoding == "utf-8" and lines and lines[-1] == b"":
        lines = lines[:-1]
    bad = 0
    for n, line in enumerate(lines, 1):
        try:
            text = line if isinstance(line, str) else line.rstrip(b"\r").decode("utf-8")
            out = normalize(text, args.preset)
        except (UnicodeDecodeError, ValueError) as exc:
            print(f"whisper-edge: line {n}: {exc}; written as an empty line", file=sys.stderr)
            out, bad = "", bad + 1
        sys.stdout.write(out + "\n")
    return 1 if bad else 0


def _cmd_model_import(args) -> int:
    from .training.model_import import import_model

    out = import_model(args.source, args.out, force=args.force, overwrite=args.overwrite)
    print(f"wrote {out}")
    return 0


def _copy_kind(report: dict) -> str:
    """What an eval report's clips are: "noisy copy" (--noisy), "long-window copy" (--long) or "" (the split itself)."""
    return "noisy copy" if report.get("noisy") else "long-window copy" if report.get("long") else ""


def format_eval_table(report: dict) -> str:
    lines = [
        f"{report['utterances']} utterances{f' ({_copy_kind(report)})' if _copy_kind(report) else ''} "
        f"({report['audio_seconds']:.1f} s of audio), "
        f"{report['skipped']} skipped, RTF {report['rtf']:.3f}",
        "",
        "| normalizer | WER % | CER % |",
        "|---|---:|---:|",
    ]
    for name, m in report["by_normalizer"].items():
        label = {"hindi": "hindi (ours)", "basic": "basic (transformers)", "raw": "raw"}[name]
        lines.append(f"| {label} | {m['wer']:.2f} | {m['cer']:.2f} |")
    # voice groups, then the effects on the clips (noise band, reverb, telephone: a clip counts in several)
    for key, title in (("by_group", "group"), ("by_condition", "condition")):
        if report.get(key):
            lines += ["", f"| {title} | utterances | WER % | CER % |", "|---|---:|---:|---:|"]
            lines += [f"| {k} | {m['utterances']} | {m['wer']:.2f} | {m['cer']:.2f} |" for k, m in report[key].items()]
    return "\n".join(lines)


def _cmd_eval(args) -> int:
    from .runtime.fsutil import atomic_write_json
    from .training.evaluate import EvalOptions, evaluate

    base = None
    if args.against:  # read and checked before the evaluation, not after it
        try:
            base = json.loads(Path(args.against).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"--against {args.against}: not a readable eval report ({exc})") from None
        theirs, ours = (f"the {k}" if k else "the split itself" for k in (_copy_kind(base), _copy_kind(vars(args))))
        if theirs != ours:  # the same utterance ids, different audio
            raise ValueError(f"--against {args.against}: that report is of {theirs} and this one of {ours} (--noisy, "
                             "--long); compare evaluations made the same way")
    opts = EvalOptions(split=args.split, language=args.language, batch_size=args.batch_size, limit=args.limit,
                       num_beams=args.beams, max_new_tokens=args.max_new_tokens, noisy=args.noisy, long=args.long,
                       dereverb=args.dereverb)
    report = evaluate(args.model, args.data, opts)
    print(format_eval_table(report))
    if base is not None:
        from .results import compare_reports

        ci = compare_reports(base, report)
        report["against"] = {"report": str(args.against)} | ci
        print(f"against {args.against}: {ci['diff']:+.2f} WER points (paired bootstrap 95 % interval "
              f"{ci['lo']:+.2f}..{ci['hi']:+.2f}, {ci['utterances']} utterances)")
    if args.out:
        atomic_write_json(args.out, report)
        print(f"wrote {args.out}")
    return 0


def _overrides(pairs: list[str] | None) -> dict:
    import yaml

    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ValueError(f"--set expects key=value, got {pair!r}")
        k, v = pair.split("=", 1)
        value = yaml.safe_load(v)
        if isinstance(value, str):  # YAML 1.1 reads "2e-5" (no dot) as a string; a number was meant
            try:
                value = float(value)
            except ValueError:
                pass
        out[k.strip()] = value
    return out


def _cmd_train(args) -> int:
    from .training.recipes import load_recipe
    from .training.train import train

    recipe = load_recipe(args.recipe, _overrides(args.set))
    summary = train(args.model, args.data, recipe, args.out, max_train=args.max_train)
    if summary:
        print(f"trained {summary['steps']} steps; best validation WER {summary['best_wer']} at step {summary['best_step']}; "
              f"model in {Path(args.out) / 'model'}")
    return 0


def _cmd_prune(args) -> int:
    from .training.counts import format_counts, model_counts
    from .training.architecture import load_checkpoint
    from .training.pruning import AdaptiveOptions, prune

    opts = AdaptiveOptions(k1=args.k1, k2=args.k2, strength=args.strength, passes=args.passes, scope=args.scope, score=args.score,
                           compensate=not args.no_compensate, ridge=args.ridge, calib_batches=args.calib_batches,
                           calib_augment=args.calib_augment and args.removal_ablation is None,
                           calib_concat=args.calib_concat if args.removal_ablation is None else 0.0)
    if args.removal_ablation is not None:
        from .results import ablation_table
        from .runtime.fsutil import atomic_write_json
        from .training.gradual import ablate

        if not args.data:
            raise ValueError("--removal-ablation needs --data (validation WER of every variant)")
        res = ablate(args.model, args.out, data=args.data, target=args.removal_ablation, opts=opts, sgl_dir=args.sgl,
                     steps=args.recover_steps, eval_limit=args.eval_limit or None, noisy=args.noisy_validation,
                     calib_augment=args.calib_augment, compare_score=args.compare_score, calib_concat=args.calib_concat,
                     long=args.long_validation)
        print("\n".join(ablation_table(res["rows"])))
        atomic_write_json(Path(args.out) / "ablation.json", res)
        return 0
    if args.ablation:
        from .training.pruning import ablation, format_ablation

        if not args.data:
            raise ValueError("--ablation needs --data (validation WER of every variant)")
        rows = ablation(args.model, args.data, opts=opts, eval_limit=args.eval_limit or 48)
        print(format_ablation(rows))
        from .runtime.fsutil import atomic_write_json

        atomic_write_json(Path(args.out) / "ablation.json", {"model": args.model, "options": opts.__dict__, "rows": rows})
        return 0
    overrides = _overrides(args.set)
    if args.method == "imp":
        overrides = {"imp.target_sparsity": args.target_sparsity, "imp.rounds": args.rounds} | (
            {"max_steps": args.steps} if args.steps else {}) | overrides
    report = prune(args.model, args.out, method=args.method, opts=opts, wer_budget=args.wer_budget, data=args.data,
                   eval_limit=args.eval_limit, recover_steps=args.recover_steps, recipe_overrides=overrides)
    model, _ = load_checkpoint(Path(args.out) / "model")
    print(format_counts(model_counts(model)))
    if "val_wer" in report:
        print(f"validation WER {report['val_wer']:.2f}")
    print(f"wrote {Path(args.out) / 'model'}")
    return 0


def _cmd_inspect(args) -> int:
    from .training.architecture import load_checkpoint
    from .training.counts import format_counts, model_counts

    model, processor = load_checkpoint(args.model)
    counts = model_counts(model, token_ctx=args.token_ctx)
    if args.json:
        print(json.dumps(counts, indent=2))
    else:
        print(format_counts(counts))
    if args.importance:
        from .training.importance import format_importance, importance_stats, measure_importance

        stats = importance_stats(model, measure_importance(model, processor, args.importance, args.calib_batches))
        print(json.dumps(stats, indent=2) if args.json else "\n" + format_importance(stats))
    return 0


def _cmd_export(args) -> int:
    if args.baseline:
        from .exporter.baseline import export_optimum

        out = export_optimum(args.model, args.out)
        print(f"wrote {out} (optimum-onnx export of the dense model)")
        return 0
    from .exporter.export import ExportOptions, export_bundle, format_validation

    texts, samples, wer_clips = (), (), ()
    if args.data:
        from .training.data import load_speech_dataset, row_audio

        if args.vocab:
            texts = tuple(load_speech_dataset(args.data, "train")["sentence"])
        val = load_speech_dataset(args.data, args.sample_split)
        samples = tuple(row_audio(a) for a in val.select(range(min(args.samples, len(val))))["audio"])
        n = min(args.wer_clips, len(val))
        wer_clips = tuple((row_audio(r["audio"]), r["sentence"]) for r in val.select(range(n)))
    elif args.vocab:
        raise ValueError("--vocab hi needs --data (its training transcripts define the kept tokens)")
    settings = _export_settings(args)
    opts = ExportOptions(quantize=settings["quantization"]["value"], vocab=args.vocab, vocab_text=texts, verify=not args.no_verify,
                         samples=samples, language=args.language, profile=args.profile, int8_encoder=args.int8_encoder,
                         wer_clips=wer_clips, max_wer_increase=args.max_wer_increase, overwrite=args.overwrite,
                         audio_ctx=settings["audio_ctx"]["value"], settings=settings, smooth_alpha=args.smooth_alpha,
                         encoder_fp32=args.encoder_fp32)
    m = export_bundle(args.model, args.out, opts)
    for name, v in m.get("validation", {}).items():
        print(f"validation ({name}):")
        print(format_validation(v["tensors"], v.get("tokens")))
        if v.get("wer"):
            w = v["wer"]
            print(f"validation WER: fp32 {w['fp32']:.2f} → {name} {w[name]:.2f} (allowed +{w['max_increase']}) {'✓' if w['ok'] else '✗'}")
    if m["metrics"].get("validation_wer"):
        print("validation WER %: " + ", ".join(f"{k} {v}" for k, v in m["metrics"]["validation_wer"].items()))
    total = sum(f["bytes"] for f in m["files"].values())
    parts = ", ".join(f"{k} {v['bytes'] / 2**20:.1f}" for k, v in m["files"].items())
    print(f"wrote {args.out}: {total / 2**20:.1f} MiB ({parts})")
    return 0


def _export_settings(args) -> dict:
    """Quantization, audio context and threads of an export: a flag wins, then the device profile, then the default;
    each recorded with where it came from (the manifest's ``settings``)."""
    prof = None
    if args.profile:
        from .runtime.profiles import load_profile

        prof = load_profile(args.profile)
    out = {}
    for key, flag, default in (("quantization", args.quantize, "none"), ("audio_ctx", args.audio_ctx, None), ("threads", None, None)):
        if flag is not None:
            out[key] = {"value": flag, "from": "flag"}
        elif prof is not None:
            out[key] = {"value": getattr(prof, key), "from": f"profile {prof.name}"}
        else:
            out[key] = {"value": default, "from": "default"}
    for key, v in out.items():
        if v["from"].startswith("profile"):
            print(f"{key} {v['value']} (from {v['from']})")
    return out


def _cmd_bundle(args) -> int:
    from .runtime.bundle import pack_archive, unpack_archive, verify_bundle

    if args.bundle_command == "tokens":
        from .runtime.parity import record

        rec = record(args.bundle, args.data, args.out, limit=args.limit, threads=args.threads)
        print(f"{len(rec['clips'])} clips decoded on {rec['machine']} (onnxruntime {rec['onnxruntime']}): {args.out}")
    elif args.bundle_command == "parity":
        from .runtime.parity import compare_files

        r = compare_files(args.reference, args.other, args.out, max_wer_diff=args.max_wer_diff)
        ci = r["wer_diff_ci"]
        print(f"{r['machines'][1]} against {r['machines'][0]} ({r['quantization']}): {r['identical_tokens']}/{r['clips']} clips "
              f"with identical tokens; WER {r['wer'][0]:.2f} → {r['wer'][1]:.2f} ({r['wer_diff']:+.2f}, 95 % CI "
              f"{ci['lo']:+.2f}..{ci['hi']:+.2f}); rule: {r['rule']}: {'PASSED' if r['passed'] else 'FAILED'}")
        return 0 if r["passed"] else 1
    elif args.bundle_command == "verify":
        m = verify_bundle(args.bundle)
        print(f"{args.bundle}: OK — format {m['format_version']}, {len(m['files'])} files checked, "
              f"quantization {m['quantization']}, audio context {m['audio_ctx']}")
    elif args.bundle_command == "pack":
        print(f"wrote {pack_archive(args.bundle, args.archive)}")
    else:
        print(f"unpacked into {unpack_archive(args.archive, args.out, overwrite=args.overwrite)}")
    return 0


def _cmd_bench(args) -> int:
    from .benchmark import bench
    from .runtime.bench import format_table

    threads, providers, beam, session = args.threads, None, args.beam, None
    if args.profile:
        from .runtime.profiles import load_profile

        prof = load_profile(args.profile)
        threads, providers, beam = args.threads or prof.threads, prof.providers, args.beam or prof.beam
        session = prof.session_options()
    compare = [c.strip() for c in (args.compare or "").split(",") if c.strip()]
    windows = [w.strip() for w in (args.audio_window or "").split(",") if w.strip()]
    exact = [e.strip() for e in (args.exact_int8 or "").split(",") if e.strip()]
    report = bench(args.bundle, args.data, args.out, compare=compare, model=args.model, optimum=args.optimum, ct2=args.ct2,
                   split=args.split, limit=args.limit or None, threads=threads or 2, providers=providers, beam=beam or 1,
                   repeats=args.repeats, max_new_tokens=args.max_new_tokens, vad=args.vad,
                   model_timestamps=args.model_timestamps, session_options=session, audio_windows=windows,
                   exact_int8=exact)
    print(format_table(report))
    if args.profile:  # the profile's budgets, checked on what was measured here
        for r in report["rows"]:
            if "error" in r:
                continue
            over = []
            if r.get("peak_rss_mb") and r["peak_rss_mb"] > prof.memory_budget_mb:
                over.append(f"peak RSS {r['peak_rss_mb']:.0f} MiB > budget {prof.memory_budget_mb}")
            if r.get("rtf") and r["rtf"] > prof.target_rtf:
                over.append(f"RTF {r['rtf']:.3f} > target {prof.target_rtf}")
            print(f"{r['label']}: {'; '.join(over) + ' (profile ' + prof.name + ')' if over else 'within the profile ' + prof.name}")
    print(f"wrote {Path(args.out) / 'bench.json'}, bench.md, bench.png")
    return 0


def _cmd_distill(args) -> int:
    from .training.distill import build_teacher_cache

    out = Path(args.out)
    if out.exists() and not out.is_file():
        raise ValueError(f"--out {out} is a folder; give a file name such as {out / 'teacher.npz'}")
    if out.is_file():  # only a teacher cache is replaced, never another file
        from .training.distill import TeacherCache, TeacherCacheError

        try:
            TeacherCache(out)
        except TeacherCacheError:
            raise ValueError(f"--out {out} exists and is not a teacher cache: choose another file name") from None
    path = build_teacher_cache(args.teacher, args.data, out, top_k=args.top_k, max_label_tokens=args.max_label_tokens)
    print(f"wrote {path}: use it with --set distill.teacher={path}")
    return 0


def _cmd_profiles(args) -> int:
    from .runtime.profiles import list_profiles, load_profile

    for name in list_profiles():
        p = load_profile(name)
        print(f"{name:20s} {p.arch:8s} {p.quantization:6s} threads {p.threads}, ≤ {p.memory_budget_mb} MiB, RTF ≤ {p.target_rtf}  "
              f"{p.description}")
    return 0


def _cmd_fit(args) -> int:
    from .fit import fit, format_fit

    r = fit(args.profile, args.model, args.data, args.out, quantizations=args.quantize, shares=args.shares,
            clips=args.clips, wer_clips=args.wer_clips, vocab=args.vocab)
    print(format_fit(r))
    print(f"wrote {Path(args.out) / 'bundle'} ({r['chosen']}) and {Path(args.out) / 'fit.md'}")
    return 0


def _cmd_experiment(args) -> int:
    from .experiment import run_experiment

    results = run_experiment(args.config, args.out, _overrides(args.set), reuse=args.reuse,
                             validation_only=args.validation_only)
    if results.get("validation_only"):
        print((Path(args.out) / "validation.md").read_text())
        print(f"wrote {Path(args.out) / 'validation.md'} in {results['seconds']:.0f} s")
        return 0
    print((Path(args.out) / "results.md").read_text())
    print(f"wrote {Path(args.out) / 'results.json'} in {results['seconds']:.0f} s")
    return 0


def _cmd_compare(args) -> int:
    from .pooled import SPLITS, pool_runs, pooled_table
    from .runtime.fsutil import atomic_write_json, atomic_write_text

    if args.out and Path(args.out).is_dir():
        raise ValueError(f"--out {args.out} is a folder; give a file name for the table (e.g. {args.out}/pooled.md)")
    pooled = pool_runs(args.runs, tuple(args.splits or SPLITS), against=args.against, by=args.by)
    table = pooled_table(pooled)
    print(table)
    if args.out:
        atomic_write_text(Path(args.out), table + "\n")
        atomic_write_json(Path(args.out).with_suffix(".json"), pooled)
        print(f"wrote {args.out} and {Path(args.out).with_suffix('.json')}")
    return 0


def _cmd_demo(args) -> int:
    from .demo import run_demo

    run_demo(Path(args.out), limit=args.limit or None)
    return 0
