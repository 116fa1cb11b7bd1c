"""Gradual structured pruning: remove in rounds, compensate, recover with distillation between rounds.

Round r takes the model of round r − 1 (round 1: the dense fine-tuned model) and

1. measures activation importance and the output projections' Gram matrices on calibration batches;
2. finds the adaptive rule's strength (training/pruning.py: per-layer two-pass thresholds) at which the
   attention + FFN parameters removed so far reach the round's target share of the dense model's — a bisection
   on the strength, no evaluation needed;
3. removes those heads and channels physically and re-fits out_proj / fc2 by ridge least squares
   (training/compensation.py);
4. recovers for ``steps`` optimizer steps, the loss mixing the reference cross-entropy with a KL term to the
   dense teacher's cached logits (training/distill.py);
5. measures validation WER: the round's operating point.

The selected model is the round with the largest removed share whose validation WER stays within
``wer_budget`` of the dense model's (measured on the same clips); the rounds are the Pareto points.
Every round lands in ROUND-N/ (pruned checkpoint, recovery run, round.json): a killed run resumes at the
round (and within its recovery, at the last training checkpoint).

``mask_from`` lets an SGL-trained model choose round 1's groups (its importance, its thresholds) while the
dense weights are what stays: SGL chooses without shrinking what is kept (docs/pruning.md).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from .pruning import AdaptiveOptions, adaptive_keep, calibrate

__all__ = ["kept_architecture", "strength_for_share", "prune_to_share", "recovery_recipe", "prune_gradual", "ablate",
           "keep_recovered", "choose_calibration", "DENSE_ROW"]

log = logging.getLogger("whisper_edge")


def kept_architecture(model, keep: dict):
    """The record the model would have after ``apply_surgery(model, keep)``, without doing it."""
    from .architecture import Architecture, architecture_of

    rec = architecture_of(model).to_dict()
    for side in ("encoder", "decoder"):
        for i, spec in enumerate(keep.get(side) or []):
            for k, v in spec.items():
                rec[side][i][k] = len(v)
    return Architecture.from_dict(rec)


def strength_for_share(model, opts: AdaptiveOptions, importance, target: float, dense_params: int,
                       iters: int = 30) -> tuple[float, dict, float]:
    """The smallest strength whose kept architecture has removed ≥ ``target`` of ``dense_params`` attention + FFN
    parameters (bisection; the removed share grows with the strength). Returns (strength, keep, share)."""
    from .counts import attention_ffn_params

    def share(s):
        keep, _ = adaptive_keep(model, AdaptiveOptions(**{**opts.__dict__, "strength": s}), importance)
        return keep, 1 - attention_ffn_params(kept_architecture(model, keep)) / dense_params

    lo, hi = 0.0, 1.0
    keep_hi, share_hi = share(hi)
    while share_hi < target and hi < 1024:
        lo, hi = hi, hi * 2
        keep_hi, share_hi = share(hi)
    for _ in range(iters):
        if hi - lo < 1e-3:
            break
        mid = (lo + hi) / 2
        keep_mid, share_mid = share(mid)
        if share_mid >= target:
            hi, keep_hi, share_hi = mid, keep_mid, share_mid
        else:
            lo = mid
    return hi, keep_hi, share_hi


def per_round_steps(steps, n: int) -> list[int]:
    """``steps`` (one count for every round, or a list with one per round) as a list of ``n`` counts ≥ 0."""
    out = [int(steps)] * n if isinstance(steps, (int, float)) and not isinstance(steps, bool) else [int(x) for x in steps]
    if len(out) != n or any(x < 0 for x in out):
        raise ValueError(f"prune.round_steps must be a step count or one count ≥ 0 per round ({n} targets), got {steps!r}")
    return out


def imp_rounds(rep: dict) -> dict:
    """IMP matched to a gradual report: its rounds at the rounds' achieved shares with the same steps each; "ends": the
    steps at which each IMP round ends (validated and kept there); "matched": the step of the chosen round's end."""
    shares = sorted({round(r["share"], 4) for r in rep["rounds"]})
    steps = rep["steps"] if isinstance(rep["steps"], list) else [int(rep["steps"])] * len(rep["rounds"])
    steps = steps[:len(shares)]
    ends = [sum(steps[:i + 1]) for i in range(len(shares))]
    return {"shares": shares, "round_steps": steps, "ends": ends, "matched": ends[min(rep["chosen_round"], len(ends)) - 1]}


def prune_gradual(model_dir, out, *, data, targets: tuple[float, ...] = (0.2, 0.3, 0.4, 0.5), steps: int | list[int] = 40,
                  opts: AdaptiveOptions = AdaptiveOptions(), teacher: str | None = None, wer_budget: float = 0.5,
                  eval_limit: int | None = None, recipe_overrides: dict | None = None, mask_from=None,
                  stop_above: float = 4.0, language: str = "hi", eval_every: int = 0, stop_early: bool = True,
                  keep_tolerance: float | None = None, reference_wer: float | None = None,
                  reference_source: str | None = None, confirm_on=None) -> dict:
    """Rounds of prune → compensate → recover (with distillation from ``teacher``, a cache file); see the module doc.
    ``stop_above``: no further round once a round's validation WER exceeds the dense model's by this much.
    ``eval_every`` > 0: a recovery is validated every that many steps (the same clips), keeps its best weights and
    stops as soon as it is within ``wer_budget`` of the dense model (``stop_early``; otherwise every round spends its
    ``steps``, as IMP's rounds do); ``steps`` is then its most. ``steps``: one count for every round or one per round.
    A validated recovery's best WER is the round's (its weights are not validated a second time). A round keeps its
    recovered weights unless they validate more than ``keep_tolerance`` above the removal's (``keep_recovered``; None,
    the default since session 18: always).
    ``reference_wer``: the dense model's validation WER on the same clips where it was measured already (the ablation's
    first row, or the run a ``--reuse`` variant took its dense model from: ``reference_source`` says which); otherwise
    it is measured here. ``confirm_on``: a corpus whose validation split confirms the selection (training/selection.py).
    """
    from ..runtime.fsutil import atomic_write_json, claim_folder
    from .architecture import load_checkpoint, save_checkpoint
    from .counts import attention_ffn_params, model_counts
    from .data import load_speech_dataset
    from .pruning import _val_wer
    from .train import train

    targets = tuple(float(t) for t in targets)
    if not targets or any(not 0 < t < 1 for t in targets) or list(targets) != sorted(set(targets)):
        raise ValueError(f"targets must be increasing shares within (0, 1), got {list(targets)}")
    steps_per_round = per_round_steps(steps, len(targets))
    out = claim_folder(out, "run", inputs=[model_dir])
    val = load_speech_dataset(data, "validation")
    limit = eval_limit or len(val)
    dense, processor = load_checkpoint(model_dir)
    dense_params = attention_ffn_params(kept_architecture(dense, {}))
    ref_path = out / "reference.json"
    if ref_path.is_file():
        reference = json.loads(ref_path.read_text())["val_wer"]
    else:
        measured = reference_wer is None
        reference = _val_wer(dense, processor, val, limit, language) if measured else float(reference_wer)
        atomic_write_json(ref_path, {"model": str(model_dir), "val_wer": reference, "clips": limit,
                                     "source": "measured" if measured else reference_source or "given (the ablation's dense row)"})
    log.info("dense model: validation WER %.2f on %d clips", reference, limit)
    rounds, previous = [], Path(model_dir)
    for r, target in enumerate(targets, 1):
        rdir = out / f"round-{r}"
        done = rdir / "round.json"
        if done.is_file():
            rounds.append(json.loads(done.read_text()))
            previous = Path(rounds[-1]["model"])
            if rounds[-1]["val_wer"] > reference + stop_above:
                break
            continue
        print(f"[prune] round {r}/{len(targets)}: {100 * target:.0f} % of attention + FFN", flush=True)
        info: dict = {"round": r, "target": target}
        if not (rdir / "pruned" / "config.json").is_file():
            model, processor = load_checkpoint(previous)
            chooser = None
            if r == 1 and mask_from is not None:  # SGL chooses the groups; the dense weights stay
                chooser, _ = load_checkpoint(mask_from)
                info["mask_from"] = str(mask_from)
            info.update(prune_to_share(model, processor, data, opts, target, dense_params, language,
                                       compensate=opts.compensate, chooser=chooser))
            info["val_wer_pruned"] = _val_wer(model, processor, val, limit, language)
            save_checkpoint(model, processor, rdir / "pruned", generation_config=model.generation_config, overwrite=True,
                            extra_files={"round.json": info})
        else:
            info = json.loads((rdir / "pruned" / "round.json").read_text())
        final, steps, best = rdir / "pruned", steps_per_round[r - 1], None
        if steps:
            validate = {"eval_every": eval_every, "eval_limit": limit, "select": "best"} if eval_every else {}
            recipe = recovery_recipe(steps, ({"distill.teacher": str(teacher)} if teacher else {}) | validate
                                     | (recipe_overrides or {}))
            summary = train(rdir / "pruned", data, recipe, rdir / "recovery",
                            stop_at_wer=reference + wer_budget if eval_every and stop_early else None,
                            label=f"recover round {r}")
            info["recovery"] = {k: v for k, v in summary.items()
                                if k in ("steps", "seconds_this_run", "mixed_precision", "best_step", "stopped_early")}
            final = rdir / "recovery" / "model"
            # the reading of the weights the recovery kept: its best, or with select: last its final one
            best = summary.get("best_wer" if summary.get("selected", "best") == "best" else "last_wer") if eval_every else None
        model, processor = load_checkpoint(final)
        wer = best if best is not None else _val_wer(model, processor, val, limit, language)
        info["kept"] = "recovered" if steps else "pruned"
        if steps and info.get("val_wer_pruned") is not None and not keep_recovered(wer, info["val_wer_pruned"], keep_tolerance):
            # the recovery made validation clearly worse: the round keeps its pruned, compensated weights (recovery
            # changes no shape, so the counts below hold for either)
            info.update(val_wer_recovered=wer, kept="pruned")
            wer, final = info["val_wer_pruned"], rdir / "pruned"
        c = model_counts(model)
        info.update(val_wer=wer, params=c["params"]["total"],
                    attention_ffn=attention_ffn_params(kept_architecture(model, {})),
                    encoder_flops=c["flops"]["encoder"], decoder_flops_per_token=c["flops"]["decoder_per_token"],
                    model=str(final))
        info["share"] = 1 - info["attention_ffn"] / dense_params
        log.info("round %d: %.1f %% of attention + FFN removed, validation WER %.2f (dense %.2f)",
                 r, 100 * info["share"], info["val_wer"], reference)
        atomic_write_json(done, info)
        rounds.append(info)
        previous = final
        if info["val_wer"] > reference + stop_above:
            log.info("round %d is %.2f WER above the dense model: no further round", r, info["val_wer"] - reference)
            break
    within = [x for x in rounds if x["val_wer"] <= reference + wer_budget]
    chosen, confirmation = within[-1] if within else min(rounds, key=lambda x: x["val_wer"]), None
    if confirm_on and within:  # the candidates read again on fresh validation clips, the largest first
        from .selection import confirm_rounds

        chosen, confirmation = confirm_rounds(within, dense_dir=model_dir, data=confirm_on, budget=wer_budget, out=out,
                                              language=language)
        within = within if confirmation["budget_met"] else []
    model, processor = load_checkpoint(chosen["model"])
    report = {"model": str(model_dir), "method": "gradual", "options": opts.__dict__, "teacher": teacher,
              "steps": steps_per_round,
              "rounds": rounds, "chosen_round": chosen["round"], "budget_met": bool(within),
              "wer_budget": {"budget": wer_budget, "base_wer": reference, "reference": "dense", "strength": chosen["strength"],
                             "search": [{"strength": x["strength"], "wer": x["val_wer"], "params": x["params"],
                                         "encoder_flops": x["encoder_flops"],
                                         "decoder_flops_per_token": x["decoder_flops_per_token"]} for x in rounds]},
              "val_wer": chosen["val_wer"], "counts_after": model_counts(model)["params"]} | (
                  {"confirmation": confirmation} if confirmation else {})
    save_checkpoint(model, processor, out / "model", generation_config=model.generation_config, overwrite=True,
                    extra_files={"prune_report.json": report})
    atomic_write_json(out / "report.json", report)
    return report


def keep_recovered(wer_recovered: float, wer_pruned: float, tolerance: float | None) -> bool:
    """Whether a round keeps its recovered weights rather than the compensated removal: unless the recovery validates
    more than ``tolerance`` WER points worse; ``None`` (the default since session 18): always. The removal was
    fitted by least squares on clean calibration clips, the recovery trained under the recipe's augmentation; a small
    clean-validation difference hides a large one under noise (session 14, round 1 at 25 %: +0.17 on the clean
    validation clips, −2.66 [−5.08, −0.34] on the noisy copy; session 18, round 3 at 45 %: the removal kept at 8.75
    against 9.26 recovered, 34.99 against 31.90 on the noisy copy; docs/pruning.md). ``tolerance`` 0 is the rule until
    session 14: recovered only if not worse."""
    return tolerance is None or wer_recovered <= wer_pruned + tolerance


def prune_to_share(model, processor, data, opts, target: float, dense_params: int, language: str, *, compensate: bool,
               chooser=None) -> dict:
    """Remove ``target`` of attention + FFN from ``model`` in place (groups chosen by ``chooser`` if given)."""
    from .architecture import apply_surgery, fold_removed_biases
    from .compensation import compensate_

    importance, grams = calibrate(model, processor, data, opts, language, importance=chooser is None, grams=compensate)
    if chooser is not None:
        importance, _ = calibrate(chooser, processor, data, opts, language, importance=True, grams=False)
    strength, keep, share = strength_for_share(chooser if chooser is not None else model, opts, importance, target, dense_params)
    fits = compensate_(model, keep, grams, opts.ridge) if compensate else []
    if not compensate:
        fold_removed_biases(model, keep)
    apply_surgery(model, keep)
    return {"strength": strength, "share": share,
            "compensation_error": [{k: f[k] for k in ("side", "layer", "kind", "error_dropped", "error_compensated")} for f in fits]}


def recovery_recipe(steps: int, overrides: dict | None = None):
    """The dense recipe (its augmentation) as a short recovery: ``steps`` steps, last weights kept, no validation."""
    from .recipes import load_recipe

    return load_recipe("dense", {"max_steps": steps, "select": "last", "warmup_steps": min(5, steps // 5), "audio_ctx": None,
                                 "eval_every": 0, "save_every": max(1, steps // 2)} | (overrides or {}))


# ablation row names that later choices read (mask_from: auto, calib_augment: auto)
DENSE_ROW = "dense, unpruned"  # the ablation's first row: the dense model's validation WER (the rounds' reference too)
SGL_GROUPS = "SGL's groups, dense weights, compensation"
AUGMENTED = ", calibration on augmented audio"  # the suffix of a variant calibrated on augmented audio


def ablate(dense_dir, out, *, data, target: float, opts: AdaptiveOptions = AdaptiveOptions(), sgl_dir=None,
           steps: int = 0, eval_limit: int | None = None, recipe_overrides: dict | None = None,
           language: str = "hi", noisy: bool = False, calib_augment: bool = False, compare_score: str | None = None,
           calib_concat: float = 0.0, long: bool = False) -> dict:
    """Validation WER of the ways to remove ``target`` of attention + FFN from the dense model (no recovery unless
    said): without / with compensation; SGL's choice of groups on the dense weights; the SGL model itself pruned;
    with ``calib_augment``, compensation calibrated on augmented audio (``AdaptiveOptions.calib_augment``); with
    ``steps``, compensation + a recovery by cross-entropy alone (gradual round 1 adds distillation); with
    ``compare_score`` (another ``AdaptiveOptions.score``), the dense model's compensated removal by that score (calibrated
    on augmented audio where ``calib_augment``). ``noisy``: every
    row also on the validation clips under the test_noisy effects (``data.noisy_copy``); ``long``: also on them joined
    2–4 to a window as test_long (``data.long_copy``); ``calib_concat`` > 0: the compensated removal calibrated with that
    share of joined windows (``AdaptiveOptions.calib_concat``) as a variant. Returns {"rows": […],
    "mask_from": dense | sgl} — the mask with the lower validation WER. Rows land in OUT/rows.json as they are
    measured (a killed run resumes)."""
    from dataclasses import replace

    from ..runtime.fsutil import atomic_write_json, claim_folder
    from .architecture import load_checkpoint, save_checkpoint
    from .counts import attention_ffn_params
    from .data import load_speech_dataset, long_copy, noisy_copy
    from .evaluate import window_seconds
    from .pruning import _val_wer

    out = claim_folder(out, "run", inputs=[dense_dir])
    path = out / "rows.json"
    rows = json.loads(path.read_text()) if path.is_file() else []
    val = load_speech_dataset(data, "validation")
    limit = min(eval_limit or len(val), len(val))
    val_noisy = noisy_copy(val.select(range(limit))) if noisy else None
    opts, augmented = replace(opts, calib_augment=False), replace(opts, calib_augment=True)  # one variant differs
    dense, processor = load_checkpoint(dense_dir)
    val_long = long_copy(val.select(range(limit)), max_seconds=min(10.0, window_seconds(dense))) if long else None
    dense_params = attention_ffn_params(kept_architecture(dense, {}))

    def measure(name, make):
        if any(r["variant"] == name and (not noisy or "val_wer_noisy" in r) and (not long or "val_wer_long" in r)
               for r in rows):
            return
        print(f"[ablation] {name}…", flush=True)
        model, info = make()
        row = {"variant": name, "target": target, **info, "val_wer": _val_wer(model, processor, val, limit, language)}
        if noisy:
            row["val_wer_noisy"] = _val_wer(model, processor, val_noisy, limit, language)
        if long:
            row["val_wer_long"] = _val_wer(model, processor, val_long, len(val_long), language)
        rows[:] = [r for r in rows if r["variant"] != name] + [row]
        atomic_write_json(path, rows)

    def variant(compensate, chooser_dir=None, weights_dir=dense_dir, popts=opts):
        def make():
            model, _ = load_checkpoint(weights_dir)
            chooser = load_checkpoint(chooser_dir)[0] if chooser_dir else None
            return model, prune_to_share(model, processor, data, popts, target, dense_params, language,
                                     compensate=compensate, chooser=chooser)
        return make

    measure(DENSE_ROW, lambda: (dense, {"strength": 0.0, "share": 0.0}))
    measure("no compensation", variant(False))
    measure("compensation", variant(True))
    if calib_augment:
        measure("compensation" + AUGMENTED, variant(True, popts=augmented))
    if calib_concat > 0:
        measure(f"compensation, calibration with {calib_concat:.0%} joined windows",
                variant(True, popts=replace(opts, calib_concat=calib_concat)))
    if sgl_dir is not None:
        measure(SGL_GROUPS, variant(True, chooser_dir=sgl_dir))
        measure("SGL model (its groups and weights), compensation", variant(True, weights_dir=sgl_dir))
        if calib_augment:  # round 1's removal as the experiment makes it, calibrated on augmented audio
            measure(SGL_GROUPS + AUGMENTED, variant(True, chooser_dir=sgl_dir, popts=augmented))
    if compare_score and compare_score != opts.score:
        measure(score_variant(compare_score, calib_augment),
                variant(True, popts=replace(augmented if calib_augment else opts, score=compare_score)))
    by = {r["variant"]: r["val_wer"] for r in rows}
    mask = "sgl" if by.get(SGL_GROUPS, float("inf")) < by["compensation"] else "dense"
    if steps:
        def recovered():
            from .train import train

            pruned_dir = out / "pruned-for-ce"
            model, _ = load_checkpoint(dense_dir)
            chooser = load_checkpoint(sgl_dir)[0] if mask == "sgl" else None
            info = prune_to_share(model, processor, data, opts, target, dense_params, language, compensate=True, chooser=chooser)
            if not (pruned_dir / "config.json").is_file():
                save_checkpoint(model, processor, pruned_dir, generation_config=model.generation_config, overwrite=True)
            recipe = recovery_recipe(steps, {k: v for k, v in (recipe_overrides or {}).items() if not k.startswith("distill.")})
            train(pruned_dir, data, recipe, out / "recovery-ce", label="ablation: recover")
            return load_checkpoint(out / "recovery-ce" / "model")[0], info | {"steps": steps, "mask_from": mask}
        measure("compensation + recovery (cross-entropy only)", recovered)
    return {"rows": rows, "mask_from": mask}



def score_variant(score: str, augmented: bool) -> str:
    """The ablation's row name for the dense model's compensated removal judged by ``score``."""
    return f"compensation, {score} score" + (AUGMENTED if augmented else "")


def choose_calibration(rows: list[dict], mask: str, tolerance: float) -> bool:
    """``prune.calib_augment: auto``: calibrate the removal on augmented audio when, in the ablation with noisy rows,
    round 1's removal (``mask``'s groups) calibrated that way validates lower on the noisy copy and at most
    ``tolerance`` higher on the clean clips than calibrated on clean clips."""
    base = SGL_GROUPS if mask == "sgl" else "compensation"
    by = {r["variant"]: r for r in rows}
    clean, aug = by.get(base), by.get(base + AUGMENTED)
    if clean is None or aug is None or "val_wer_noisy" not in clean or "val_wer_noisy" not in aug:
        raise ValueError(f"prune.calib_augment: auto needs the ablation's rows {base!r} and {base + AUGMENTED!r} with noisy "
                         "validation (prune.ablate_noisy: true)")
    return aug["val_wer_noisy"] < clean["val_wer_noisy"] and aug["val_wer"] <= clean["val_wer"] + tolerance
