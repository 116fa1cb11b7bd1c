"""``whisper-edge experiment``: the paper's comparison end to end, resumable stage by stage (OUT/timeline.tsv).

import → dense fine-tune → SGL fine-tune → teacher cache → pruning (one-shot strength search, or the ablation and
gradual rounds) → IMP from the same dense model on the same steps (gradual: at the rounds' shares) → WER of every model
on every split → exports (a variant the WER check refuses is recorded, not retried) → bench against the peers (and each
round's bundle with ``prune.export_rounds``) → results.json, results.md and plots (whisper_edge/results.py, plots.py).
Each stage is skipped when its output is complete, so a killed run continues where it stopped."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import yaml

from . import timeline
from .corpora import pending_builds
from .evaluation import XVAL_FILE, check_extra_test, check_extra_validation, evaluate_all, evaluate_extra_validation
from .experiment_config import DEFAULTS, load_config, recover_overrides, seeded, val_limit
from .runtime.fsutil import atomic_write_json, atomic_write_text, claim_folder

__all__ = ["run_experiment", "load_config", "DEFAULTS"]

log = logging.getLogger("whisper_edge")


def _stage(name: str, done: bool, out: Path):
    """Say whether stage ``name`` runs; its start (or skip) goes to OUT/timeline.tsv (whisper_edge/timeline.py)."""
    if done:
        print(f"[experiment] {name}: done earlier, skipped", flush=True)
    else:
        print(f"[experiment] {name}…", flush=True)
    timeline.mark(out, name, done)
    return not done


def _check_extras(cfg: dict) -> None:
    """eval.extra_test, eval.extra_validation and prune.confirm_on: corpora that speak none of the training corpus's
    sentences (nor the extra test set's)."""
    if cfg["eval"].get("extra_test"):
        check_extra_test(cfg["data"], cfg["eval"]["extra_test"])
    if cfg["eval"].get("extra_validation"):
        check_extra_validation(cfg["data"], cfg["eval"]["extra_validation"], cfg["eval"].get("extra_test"))
    if cfg["prune"].get("confirm_on"):
        check_extra_validation(cfg["data"], cfg["prune"]["confirm_on"], cfg["eval"].get("extra_test"), key="prune.confirm_on")


def _imp_target(pruned_model, dense_model) -> float:
    """The share of attention/FFN weights that SGL+adaptive removed or left at zero (IMP is matched to it)."""
    from .training.architecture import load_checkpoint
    from .training.counts import model_counts
    from .training.train import prunable_weights, sparsity_report

    model, _ = load_checkpoint(pruned_model)
    c = model_counts(model)["params"]
    dense, _ = load_checkpoint(dense_model)
    prunable = sum(w.numel() for w in prunable_weights(dense))
    zero_after = c["removed"] + sparsity_report(model)["weight_sparsity"] * (prunable - c["removed"])
    return min(0.95, max(0.05, zero_after / prunable))


def run_experiment(config, out, overrides: dict | None = None, *, reuse=None, validation_only: bool = False) -> dict:
    """The experiment in ``out`` (resumed where it stopped). ``reuse``: another experiment's folder whose finished
    stages with the same settings are linked in first (whisper_edge/reuse.py). ``validation_only``: stop after the
    training and pruning stages, before any test split is read; OUT/validation.md holds what they chose."""
    from .exporter.export import ExportOptions, export_bundle
    from .training.model_import import import_model
    from .training.pruning import AdaptiveOptions, prune
    from .training.recipes import load_recipe
    from .training.train import train
    from .results import write_results

    cfg = load_config(config, overrides)
    builds = pending_builds(cfg["build"])  # a finished corpus built otherwise is refused here
    if not builds:  # refused in seconds, not after the training
        _check_extras(cfg)
    from .reuse import check_resume, check_reuse

    if reuse is not None:
        check_reuse(reuse, out)
    check_resume(out, cfg)  # before experiment.yaml is written again
    out = claim_folder(out, "experiment")
    atomic_write_text(out / "experiment.yaml", yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    timeline.begin(out)
    if reuse is not None:
        from .reuse import reuse_stages

        reuse_stages(reuse, out, cfg)
    if builds:
        from .training.corpus.build import build_corpus

        for opts in builds:
            _stage(f"build corpus {opts.out}", False, out)
            build_corpus(opts)
        _check_extras(cfg)
    data, steps = cfg["data"], int(cfg["steps"])
    t0 = time.perf_counter()

    base = out / "base"
    if _stage("import", (base / "config.json").is_file(), out):
        import_model(cfg["model"], base)
    runs = {"base (zero-shot)": base}
    if _stage("train dense", (out / "dense" / "summary.json").is_file(), out):
        train(base, data, load_recipe("dense", seeded(cfg, {"max_steps": steps} | cfg["dense"])), out / "dense")
    runs["dense"] = out / "dense" / "model"
    start = runs["dense"] if cfg["start"] == "dense" else base
    if cfg["sgl"] is None:  # the rounds take the dense model's groups: nothing reads an SGL model (load_config checks)
        print("[experiment] sgl: null — no SGL stage", flush=True)
    else:
        if _stage("train sgl", (out / "sgl" / "summary.json").is_file(), out):
            train(start, data, load_recipe("sgl", seeded(cfg, {"max_steps": steps} | cfg["sgl"])), out / "sgl")
        runs["sgl"] = out / "sgl" / "model"
    pr = cfg["prune"]
    pruned = out / "sgl-pruned"
    teacher = None
    if pr["distill"]:
        teacher = out / "teacher.npz"
        if _stage("teacher logits", teacher.is_file(), out):
            from .training.distill import build_teacher_cache

            build_teacher_cache(runs["dense"], data, teacher, top_k=int(pr["teacher_top_k"]))
    if pr["schedule"] == "gradual":
        _prune_gradual(cfg, runs, data, out, teacher)
    elif _stage("prune adaptive", (pruned / "report.json").is_file(), out):
        popts = AdaptiveOptions(compensate=bool(pr["compensate"]), ridge=float(pr["ridge"]), calib_batches=int(pr["calib_batches"]),
                            calib_augment=pr["calib_augment"] is True, score=pr["score"])
        prune(runs["sgl"], pruned, method="adaptive", opts=popts, wer_budget=pr.get("wer_budget"), data=data,
              recover_steps=int(pr.get("recover_steps") or 0), eval_limit=val_limit(pr),
              strengths=tuple(pr.get("strengths") or DEFAULTS["prune"]["strengths"]),
              recipe_overrides=recover_overrides(cfg))
    runs["sgl+adaptive"] = pruned / "model"
    if cfg["imp"] is not None:
        imp = out / "imp"
        if _stage("train imp", (imp / "report.json").is_file(), out):
            if pr["schedule"] == "gradual":  # the same rounds, steps, learning rate, teacher and validation clips
                from .training.gradual import imp_rounds

                m = imp_rounds(json.loads((pruned / "report.json").read_text()))
                target, overrides = m["shares"][-1], {
                    "max_steps": m["ends"][-1], "imp.rounds": len(m["shares"]), "imp.sparsities": m["shares"],
                    "imp.round_steps": m["round_steps"], "imp.lr_per_round": True, "eval_every": 0, "eval_at": m["ends"],
                    "snapshot_at": m["ends"],
                    "eval_limit": val_limit(pr), "warmup_steps": 5, "save_every": min(m["round_steps"]),
                    "select": "last"} | recover_overrides(cfg) | (
                    {"distill.teacher": str(teacher), "distill.alpha": float(pr["distill_alpha"])} if teacher else {})
            else:
                target, overrides = _imp_target(runs["sgl+adaptive"], runs["dense"]), seeded(cfg, {"max_steps": steps} | dict(
                    pr.get("recover_set") or {}))
            prune(start, imp, method="imp", data=data, eval_limit=0,
                  recipe_overrides=overrides | {"imp.target_sparsity": round(target, 4),
                                                "imp.rounds": overrides.get("imp.rounds", int(cfg["imp"].get("rounds", 4)))})
        runs["imp"] = _imp_matched_model(imp, pruned, pr) if pr["schedule"] == "gradual" else imp / "model"

    if cfg["eval"].get("extra_validation"):
        evaluate_extra_validation(runs, cfg["eval"], out, _stage)
    if validation_only:
        from .results import pruning_sections

        res = _pruning_results(out)
        atomic_write_text(out / "validation.md", "\n".join([
            "# Validation only: no test split was read", "",
            "Training and pruning ran, and every choice was made on the validation split; the test splits, exports and "
            "bench were not run. The same command without `--validation-only` continues from here.",
            *pruning_sections(res)]) + "\n")
        timeline.mark(out, timeline.STOP, False)
        return res | {"config": cfg, "seconds": round(time.perf_counter() - t0, 1), "validation_only": True}
    results = evaluate_all(runs, data, cfg["eval"], out, _stage)

    from .training.data import load_speech_dataset, row_audio

    texts = tuple(load_speech_dataset(data, "train")["sentence"])
    val = load_speech_dataset(data, "validation")
    samples = tuple(row_audio(a) for a in val.select(range(min(4, len(val))))["audio"])
    # a quantized variant is judged by its WER against fp32 on validation clips (docs/export.md)
    n_wer = min(int(cfg.get("export_wer_clips") or 0), len(val))
    wer_clips = tuple((row_audio(r["audio"]), r["sentence"]) for r in val.select(range(n_wer)))
    bundles = {}
    refused = _refusals(out)
    fallback = cfg["export_fallback"]
    for name in [n for n in ("dense", "sgl+adaptive", "imp") if n in runs]:
        for label, q, vocab, enc in export_variants(cfg, name):
            def export(p, q, vocab=vocab, name=name, enc=enc):
                return export_bundle(runs[name], p, ExportOptions(
                    quantize=q, vocab=vocab, vocab_text=texts if vocab else (), samples=samples,
                    wer_clips=wer_clips if q != "none" else (), max_wer_increase=float(cfg["export_max_wer_increase"]),
                    int8_encoder=enc is not None, encoder_fp32=enc or 0))
            # the int8 encoder has no fallback mode (int8w keeps the encoder fp32: the vocab-hi bundle already is that)
            got = _export_with_fallback(label, q, fallback if enc is None else None, out, refused, export)
            if got:
                bundles[got["label"]] = {"path": str(got["path"]), "model": name} | (
                    {"replaces": got["replaces"]} if got["replaces"] else {})

    b = cfg["bench"]
    bench_dir = out / "bench"
    if b and _stage("bench", (bench_dir / "bench.json").is_file(), out):
        from .benchmark import bench

        bench([v["path"] for v in bundles.values()], data, bench_dir, compare=b.get("compare") or (), model=runs["dense"],
              limit=int(b["limit"]), threads=int(b["threads"]), repeats=int(b["repeats"]),
              max_new_tokens=int(b.get("max_new_tokens", 200)))
    if b:
        results["bench"] = json.loads((bench_dir / "bench.json").read_text())
    if pr["schedule"] == "gradual" and pr["export_rounds"] and b:
        results["round_latency"] = _round_latency(out, data, b, results["bench"], refused, fallback, lambda model, path, q:
            export_bundle(model, path, ExportOptions(quantize=q, samples=samples, wer_clips=wer_clips,
                                                     max_wer_increase=float(cfg["export_max_wer_increase"]))))
    for label, v in bundles.items():
        manifest = json.loads((Path(v["path"]) / "manifest.json").read_text())
        v["bytes"] = sum(f["bytes"] for f in manifest["files"].values())
        v["vocab"] = len(manifest["vocab_map"]) if manifest.get("vocab_map") else manifest["vocab_size"]
        v["quantization"] = manifest["quantization"]
        v["validation_wer"] = manifest.get("metrics", {}).get("validation_wer")
    results["bundles"] = bundles
    results["refused_bundles"] = {k: v for k, v in refused.items() if not k.startswith("round ")}
    results |= _pruning_results(out)
    results["config"] = cfg
    results["seconds"] = round(time.perf_counter() - t0, 1)
    timeline.mark(out, timeline.LAST, False)
    results["timeline"] = timeline.read(out)
    atomic_write_json(out / "results.json", results)
    write_results(results, out)
    return results


def _prune_gradual(cfg: dict, runs: dict, data, out: Path, teacher) -> None:
    """The ablation at round 1's share (which also picks round 1's mask), then the gradual rounds."""
    from dataclasses import replace

    from .reuse import reused_reference
    from .training.gradual import AUGMENTED, DENSE_ROW, ablate, choose_calibration, per_round_steps, prune_gradual
    from .training.pruning import AdaptiveOptions

    pr = cfg["prune"]
    pruned = out / "sgl-pruned"
    if (pruned / "report.json").is_file():
        _stage("prune gradual", True, out)
        return
    calib = pr["calib_augment"]
    opts = AdaptiveOptions(compensate=bool(pr["compensate"]), ridge=float(pr["ridge"]), calib_batches=int(pr["calib_batches"]),
                           calib_augment=calib is True, score=pr["score"])
    overrides = recover_overrides(cfg) | ({"distill.alpha": float(pr["distill_alpha"])} if teacher else {})
    mask = pr["mask_from"]  # auto | sgl | dense (load_config checks)
    sgl = runs.get("sgl") if (runs.get("sgl") and Path(runs["sgl"], "config.json").is_file()) else None
    reference = None  # the rounds' reference: the dense model's validation WER, where the ablation measured it
    if pr["ablate"] or (mask == "auto" and sgl is not None):
        if _stage("ablation", (out / "ablation.json").is_file(), out):
            abl = ablate(runs["dense"], out / "ablation", data=data, target=float(pr["targets"][0]), opts=opts,
                         sgl_dir=sgl, steps=int(pr["ablate_steps"] or per_round_steps(pr["round_steps"], len(pr["targets"]))[0]) if pr["ablate"] else 0,
                         eval_limit=pr["eval_limit"], recipe_overrides=overrides, noisy=bool(pr["ablate_noisy"]),
                         calib_augment=bool(pr["ablate_noisy"]), compare_score=pr["compare_score"])
            atomic_write_json(out / "ablation.json", abl)
        else:
            abl = json.loads((out / "ablation.json").read_text())
        reference = next((r["val_wer"] for r in abl["rows"] if r["variant"] == DENSE_ROW), None)
        if mask == "auto":
            mask = abl["mask_from"]
        if calib == "auto":
            opts = replace(opts, calib_augment=choose_calibration(abl["rows"], mask, float(pr["calib_tolerance"])))
    source = None
    if reference is None and (got := reused_reference(out, cfg)) is not None:  # --reuse: RUN measured it
        reference, source = got
    _stage(f"prune gradual (round 1's groups chosen by the {mask} model{AUGMENTED if opts.calib_augment else ''})", False, out)
    rep = prune_gradual(runs["dense"], pruned, data=data, targets=tuple(pr["targets"]), steps=pr["round_steps"],
                        opts=opts, teacher=str(teacher) if teacher else None, wer_budget=float(pr["wer_budget"]),
                        eval_limit=pr["eval_limit"], recipe_overrides=overrides, mask_from=sgl if mask == "sgl" else None,
                        eval_every=int(pr["round_eval_every"] or 0), stop_early=bool(pr["round_stop_early"]),
                        keep_tolerance=pr["keep_tolerance"], reference_wer=reference, reference_source=source,
                        confirm_on=pr["confirm_on"])
    rep["mask_from"] = mask
    atomic_write_json(pruned / "report.json", rep)


REFUSED = "refused-exports.json"  # OUT/: export variants the WER check refused (a resumed run does not retry them)


def _refusals(out: Path) -> dict:
    return json.loads((out / REFUSED).read_text()) if (out / REFUSED).is_file() else {}


def _export_once(label: str, path: Path, out: Path, refused: dict, export) -> bool:
    """Run ``export(path)`` unless the bundle is there or the variant was refused earlier; a refusal by the export's WER
    check is a result too: recorded in ``refused`` and OUT/refused-exports.json, and the rest goes on. True: a bundle."""
    from .exporter.export import ValidationError

    if label in refused:
        print(f"[experiment] export {label}: refused earlier ({refused[label]}), skipped", flush=True)
        return False
    if _stage(f"export {label}", (path / "manifest.json").is_file(), out):
        try:
            export(path)
        except ValidationError as exc:
            refused[label] = str(exc).splitlines()[-1]
            log.warning("export %s refused: %s", label, refused[label])
            atomic_write_json(out / REFUSED, refused)
            return False
    return True


def export_variants(cfg: dict, name: str) -> list[tuple[str, str, str | None, int | None]]:
    """The bundles the experiment makes of model ``name``: (label, with ``{}`` for the quantization; quantization;
    vocabulary; encoder weight groups kept fp32 by an int8 encoder, or None for an fp32 encoder). Every model gets
    ``export``'s quantizations; the pruned model also the Hindi vocabulary trim (``vocab``) and, with ``int8_encoder``
    set, the int8-encoder bundle (the smallest in memory, docs/bench.md)."""
    got = [(f"{name} {{}}", q, None, None) for q in cfg["export"]]
    if name == "sgl+adaptive":
        k8 = cfg["int8_encoder"]
        got += [(f"{name} {{}} vocab-hi", "int8", "hi", None)] if cfg["vocab"] else []
        got += [(f"{name} {{}} int8-encoder{f'-k{k8}' if k8 else ''} vocab-hi", "int8", "hi", k8)] if k8 is not None else []
    return got


def _export_with_fallback(label: str, q: str, fallback: str | None, out: Path, refused: dict, export):
    """``export(path, q)`` as bundle ``label`` (``{}`` stands for the quantization); when the WER check refuses it, the
    same in ``fallback`` (the int8 decoder of a pruned model can lose points that 8-bit weights keep, docs/export.md).
    Returns the bundle made — {label, path, mode, replaces: the refused label or None} — or None."""
    tried = [q] + ([fallback] if fallback and q not in ("none", fallback) else [])
    first = label.format("fp32" if q == "none" else q)
    for mode in tried:
        name = label.format("fp32" if mode == "none" else mode)
        path = out / "bundles" / name.replace(" ", "-").replace("+", "-")
        if _export_once(name, path, out, refused, lambda p, mode=mode: export(p, mode)):
            return {"label": name, "path": path, "mode": mode, "replaces": first if name != first else None}
        if name not in refused:  # not a refusal by the WER check: no fallback
            return None
    return None


def _round_latency(out: Path, data, b: dict, main_bench: dict, refused: dict, fallback: str | None, export) -> dict:
    """Each gradual round's model exported int8 (as the dense and IMP bundles are; ``fallback`` where the WER check
    refuses it) and benched on the bench's clips and threads (OUT/bench-rounds): the Pareto figure's WER against
    measured latency. A refused export is recorded. The selected round is the sgl+adaptive model: its bundle (or
    refusal) is reused, not made again."""
    from .benchmark import bench

    rep = json.loads((out / "sgl-pruned" / "report.json").read_text())
    rounds, paths = rep["rounds"], {}
    name = {r["round"]: "sgl+adaptive" if r["round"] == rep.get("chosen_round") else f"round {r['round']}" for r in rounds}
    for r in rounds:
        got = _export_with_fallback(f"{name[r['round']]} {{}}", "int8", fallback, out, refused,
                                    lambda p, q, m=r["model"]: export(m, p, q))
        if got:
            paths[r["round"]] = got
    bench_dir = out / "bench-rounds"
    if paths and _stage("bench rounds", (bench_dir / "bench.json").is_file(), out):
        bench([str(g["path"]) for g in paths.values()], data, bench_dir, limit=int(b["limit"]), threads=int(b["threads"]),
              repeats=int(b["repeats"]), max_new_tokens=int(b.get("max_new_tokens", 200)))
    rows = {Path(x["target"]).name: x for x in json.loads((bench_dir / "bench.json").read_text())["rows"]} if paths else {}
    by_label = {Path(x.get("target") or "").name: x for x in main_bench.get("rows") or []}
    return {"rounds": [{"round": r["round"], "share": r["share"], "val_wer": r["val_wer"],
                        **({k: rows[paths[r["round"]]["path"].name][k] for k in ("rtf", "encoder_ms", "peak_rss_mb")}
                           | {"quantization": paths[r["round"]]["mode"]}
                           if r["round"] in paths and paths[r["round"]]["path"].name in rows else {}),
                        "refusals": {m: refused[k] for m in ("int8", fallback) if (k := f"{name[r['round']]} {m}") in refused}}
                       for r in rounds],
            **{f"{m}_rtf": (by_label.get(f"{m}-int8") or by_label.get(f"{m}-{fallback}") or {}).get("rtf") for m in ("dense", "imp")}}


def _imp_matched_model(imp: Path, pruned: Path, pr: dict) -> Path:
    """IMP's round matched to the selected gradual round (OUT/imp/snapshots/step-N: the test split compares the methods
    at the same share); its last round's model for a run from before the snapshots were kept."""
    from .training.gradual import imp_rounds

    snap = imp / "snapshots" / f"step-{imp_rounds(json.loads((pruned / 'report.json').read_text()))['matched']}"
    return snap if (snap / "config.json").is_file() else imp / "model"


def _pruning_results(out: Path) -> dict:
    """What the pruning and IMP stages chose on the validation split: the rounds, the ablation, IMP's points."""
    prune_report = json.loads((out / "sgl-pruned" / "report.json").read_text())
    res = {"prune": {k: prune_report.get(k) for k in ("wer_budget", "options", "families", "val_wer", "rounds",
                                                      "chosen_round", "budget_met", "mask_from", "teacher")}}
    if (out / "ablation.json").is_file():
        res["ablation"] = json.loads((out / "ablation.json").read_text())
    if (out / "imp" / "log.csv").is_file():
        res["imp_points"] = _imp_points(out / "imp")
    if (out / XVAL_FILE).is_file():
        res["extra_validation"] = json.loads((out / XVAL_FILE).read_text())
    imp_report = out / "imp" / "report.json"
    if imp_report.is_file():
        res["imp_target"] = json.loads(imp_report.read_text()).get("train", {}).get("recipe", {}).get("imp")
    return res


def _imp_points(run: Path) -> list[dict]:
    """IMP's operating points: validation WER at the end of each round (log.csv) and the round's sparsity."""
    import csv

    with open(run / "log.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("val_wer")]
    return [{"step": int(r["step"]), "val_wer": float(r["val_wer"]),
             "weight_sparsity": float(r["weight_sparsity"]) if r.get("weight_sparsity") else None} for r in rows]
