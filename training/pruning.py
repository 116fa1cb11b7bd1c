"""Weight-adaptive two-pass structured pruning (and one-shot magnitude pruning for the IMP baseline).

The rule (docs/pruning.md has the reasoning and the ablation):

* score of a group g (a head or an FFN channel): by default its activation-aware importance, the mean
  norm of what it adds to the residual stream on a few training batches (training/importance.py);
  ``score="rms"`` uses the RMS of its weights, ‖W_g‖₂ / √p_g, instead (the weights-only rule: on
  Whisper-base the two are often *negatively* correlated within a layer, docs/pruning.md);
* a *family* is the set of groups of one kind in one sublayer (the heads of encoder layer 3's
  self-attention; the channels of decoder layer 5's FFN); statistics are taken per family;
* pass 0: groups that are exactly zero (SGL's proximal step makes these) are removed;
* pass 1: of the remaining groups, remove those below ``k1 · median`` of the family's scores
  (SGL pushes unneeded groups far below the typical group of their own layer);
* pass 2: recompute the statistics on the survivors (mean μ, standard deviation σ of the scores)
  and remove those below ``μ − k2 · σ``, the stragglers pass 1 left because its median was
  pulled down by the groups it removed.

``strength`` scales both passes (k1·s, k2/s); ``--wer-budget`` searches the largest strength whose
validation WER stays within the budget. ``scope="global"`` pools each kind's statistics over all
layers (the ablation's alternative); ``passes=1`` stops after pass 1.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

from .architecture import Architecture, apply_surgery, architecture_of, fold_removed_biases
from .groups import group_scores

__all__ = ["AdaptiveOptions", "SCORES", "adaptive_keep", "prune_adaptive", "keep_from_zeros"]

log = logging.getLogger("whisper_edge")


SCORES = ("activation", "obs", "rms")  # the data-driven scores first: both need calibration batches
DATA_SCORES = SCORES[:2]


@dataclass(frozen=True)
class AdaptiveOptions:
    k1: float = 0.5
    k2: float = 2.0
    strength: float = 1.0
    passes: int = 2
    scope: str = "layer"  # layer | global
    min_heads: int = 0  # keep at least this many heads per attention sublayer
    min_channels: int = 0
    score: str = "activation"  # activation | obs | rms (docs/pruning.md "The compensated score")
    calib_batches: int = 8  # training batches that measure the activation score (and the compensation's Gram matrices)
    compensate: bool = True  # re-fit out_proj / fc2 of every pruned sublayer by ridge least squares (compensation.py)
    ridge: float = 1e-2  # the re-fit's ridge toward the original weights, relative to the mean input energy
    # the calibration clips hear the dense recipe's augmentation (noise, reverb, telephone …, one draw each), so the
    # score and the compensation see the audio the model is trained for, not only clean speech
    calib_augment: bool = False
    # that share of the calibration windows holds 2–3 clips joined (importance.calibration_batches): windows full of
    # speech, as long recordings give, instead of one sentence and the rest silence
    calib_concat: float = 0.0

    def __post_init__(self):
        if self.score not in SCORES:
            raise ValueError(f"score must be one of {', '.join(SCORES)}, got {self.score!r}")
        if self.passes not in (1, 2):
            raise ValueError(f"passes must be 1 or 2, got {self.passes}")
        if self.scope not in ("layer", "global"):
            raise ValueError(f"scope must be 'layer' or 'global', got {self.scope!r}")
        if self.strength < 0 or self.k1 < 0 or self.k2 < 0:
            raise ValueError("k1, k2 and strength must be ≥ 0")
        if self.ridge < 0:
            raise ValueError(f"ridge must be ≥ 0, got {self.ridge}")
        if not 0.0 <= self.calib_concat <= 1.0:
            raise ValueError(f"calib_concat is a share of the calibration windows within [0, 1], got {self.calib_concat}")


def _family_key(side: str, kind: str) -> str:
    return f"{side}/{kind}"


def adaptive_keep(model, opts: AdaptiveOptions = AdaptiveOptions(), importance: list | None = None) -> tuple[dict, list[dict]]:
    """Decide which groups stay. Returns (keep spec for apply_surgery, per-family report).

    ``importance``: per-family scores from calibration data (:func:`calibrate`) for ``score="activation"`` or
    ``"obs"``; exact zeros are always read off the weights."""
    fams = [f | {"score": f["rms"]} for f in group_scores(model)]  # the score each group is judged by: weight RMS …
    if opts.score in DATA_SCORES and opts.strength > 0:
        if importance is None:
            raise ValueError(f"the {opts.score} score needs calibration data: give --data, or use --score rms")
        if len(importance) != len(fams):
            raise ValueError("importance was measured on a model with other sublayers")
        fams = [f | {"score": torch.where(f["norm"] == 0, torch.zeros_like(imp), imp.clamp_min(1e-30))}  # … or activation
                for f, imp in zip(fams, importance)]
    s = opts.strength
    k1, k2 = opts.k1 * s, (opts.k2 / s if s > 0 else float("inf"))
    pooled: dict[str, torch.Tensor] = {}
    if opts.scope == "global":
        for f in fams:
            key = _family_key(f["side"], f["kind"])
            pooled[key] = torch.cat([pooled.get(key, torch.empty(0)), f["score"]])

    def thresholds(scores: torch.Tensor) -> tuple[float, torch.Tensor]:
        alive = scores[scores > 0]
        t1 = k1 * float(alive.median()) if len(alive) else 0.0
        surv = alive[alive >= t1]
        t2 = float(surv.mean() - k2 * surv.std()) if len(surv) > 1 and opts.passes == 2 and k2 != float("inf") else 0.0
        return t1, torch.tensor(t2)

    global_t = {k: thresholds(v) for k, v in pooled.items()}
    arch = architecture_of(model)
    keep = {"encoder": [{} for _ in arch.encoder], "decoder": [{} for _ in arch.decoder]}
    report = []
    for f in fams:
        score = f["score"]
        if opts.scope == "global":
            t1, t2 = global_t[_family_key(f["side"], f["kind"])]
        else:
            t1, t2 = thresholds(score)
        zero = score == 0
        p1 = (~zero) & (score < t1)
        p2 = (~zero) & (~p1) & (score < float(t2))
        kept = ~(zero | p1 | p2)
        floor = opts.min_channels if f["kind"] == "ffn" else opts.min_heads
        if int(kept.sum()) < floor:  # restore the strongest groups up to the floor
            order = torch.argsort(score, descending=True)[:floor]
            kept[order] = True
        keep[f["side"]][f["layer"]][f["kind"]] = [int(i) for i in torch.nonzero(kept).flatten()]
        report.append({"side": f["side"], "layer": f["layer"], "kind": f["kind"], "groups": len(score),
                       "zero": int(zero.sum()), "pass1": int((p1 & ~kept).sum()), "pass2": int((p2 & ~kept).sum()),
                       "kept": int(kept.sum()), "t1": float(t1), "t2": float(t2)})
    return keep, report


ZEROS_ONLY = AdaptiveOptions(k1=0.0, k2=0.0, passes=1, score="rms", compensate=False)


def keep_from_zeros(model) -> dict:
    """Keep every group that is not entirely zero (what physical removal of an IMP or SGL model can cut)."""
    return adaptive_keep(model, ZEROS_ONLY)[0]


def prune_adaptive(model, opts: AdaptiveOptions = AdaptiveOptions(), importance: list | None = None,
                   grams: list | None = None) -> tuple[Architecture, list[dict]]:
    """Apply the adaptive rule and remove the groups physically; returns the new record and the report.

    With ``grams`` (compensation.input_grams on this model) and ``opts.compensate``, the output projection
    of every pruned sublayer is re-fitted by ridge least squares; otherwise what the removed groups add
    as constants is folded into the biases."""
    keep, report = adaptive_keep(model, opts, importance)
    if grams is not None and opts.compensate:
        from .compensation import compensate_

        fits = {(r["side"], r["layer"], r["kind"]): r for r in compensate_(model, keep, grams, opts.ridge)}
        for r in report:
            fit = fits.get((r["side"], r["layer"], r["kind"]))
            if fit:
                r.update(error_dropped=fit["error_dropped"], error_compensated=fit["error_compensated"])
    else:
        fold_removed_biases(model, keep)
    arch = apply_surgery(model, keep)
    return arch, report


def calibrate(model, processor, data, opts: AdaptiveOptions, language: str = "hi", *,
              importance: bool | None = None, grams: bool | None = None) -> tuple[list | None, list | None]:
    """(score, Gram matrices) on ``opts.calib_batches`` training batches of ``data``: the inputs of the score
    (``opts.score``: activation importance, or the compensated ``obs`` saliency computed from the Gram matrices) and
    of the compensation, measured once on the unpruned model from the same batches. By default each is measured only
    when ``opts`` needs it (None otherwise); ``importance``/``grams`` force it."""
    need_imp = opts.score in DATA_SCORES and opts.strength > 0 if importance is None else importance
    need_gram = opts.compensate if grams is None else grams
    if not (need_imp or need_gram):
        return None, None
    from .compensation import compensated_saliency, input_grams
    from .importance import data_calibration_batches, group_importance

    augment = None
    if opts.calib_augment:
        from .recipes import load_recipe

        augment = load_recipe("dense").augment
    batches = data_calibration_batches(model, processor, data, opts.calib_batches, language, augment=augment,
                                       concat=opts.calib_concat)
    grams = input_grams(model, batches) if need_gram or (need_imp and opts.score == "obs") else None
    if need_imp and opts.score == "obs":
        return compensated_saliency(model, grams, opts.ridge), (grams if need_gram else None)
    return (group_importance(model, batches) if need_imp else None), grams


def _val_wer(model, processor, dataset, limit: int, language: str) -> float:
    from .evaluate import EvalOptions, evaluate_model

    return evaluate_model(model, processor, dataset, EvalOptions(split="validation", language=language, limit=limit),
                          desc="validation")["wer"]


def prune(model_dir, out, *, method: str = "adaptive", opts: AdaptiveOptions = AdaptiveOptions(),
          wer_budget: float | None = None, data=None, eval_split: str = "validation", eval_limit: int = 48,
          recover_steps: int = 0, recipe_overrides: dict | None = None, language: str = "hi",
          strengths: tuple[float, ...] = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)) -> dict:
    """``whisper-edge prune``. Output layout: OUT/model (final checkpoint), OUT/report.json, and for
    recovery or IMP the training run's files (log.csv, checkpoints/) under OUT/."""
    import copy
    from pathlib import Path

    from ..runtime.fsutil import atomic_write_json, claim_folder
    from .architecture import load_checkpoint, save_checkpoint
    from .counts import model_counts
    from .recipes import load_recipe
    from .train import sparsity_report, train

    out = Path(out)
    if method not in ("adaptive", "imp", "zeros"):
        raise ValueError(f"unknown pruning method {method!r}; choose adaptive, imp or zeros")
    claim_folder(out, "run", inputs=[model_dir])
    if (wer_budget is not None or recover_steps or method == "imp") and data is None:
        raise ValueError("--data is needed for --wer-budget, --recover-steps and --method imp")
    report: dict = {"model": str(model_dir), "method": method}
    val_ds = None
    if data is not None and (wer_budget is not None or eval_limit):
        from .data import load_speech_dataset

        val_ds = load_speech_dataset(data, eval_split)
    if method == "imp":
        overrides = {"select": "last"} | (recipe_overrides or {})
        recipe = load_recipe("imp", overrides)
        report["train"] = train(model_dir, data, recipe, out)
        model, processor = load_checkpoint(out / "model")
        before = model_counts(model)
        apply_surgery(model, keep_from_zeros(model))
    else:
        model, processor = load_checkpoint(model_dir)
        before = model_counts(model)
        report["sparsity_before"] = sparsity_report(model)
        importance = grams = None
        if method == "zeros":
            opts = ZEROS_ONLY
        else:
            importance, grams = calibrate(model, processor, data, opts, language)
        if method != "zeros" and wer_budget is not None:
            ds = val_ds
            base = _val_wer(model, processor, ds, eval_limit, language)
            search = []
            chosen = 0.0
            for s in sorted(strengths):
                trial = copy.deepcopy(model)
                prune_adaptive(trial, AdaptiveOptions(**{**opts.__dict__, "strength": s}), importance, grams)
                wer = _val_wer(trial, processor, ds, eval_limit, language)
                c = model_counts(trial)
                n = c["params"]["total"]
                search.append({"strength": s, "wer": wer, "params": n, "encoder_flops": c["flops"]["encoder"],
                               "decoder_flops_per_token": c["flops"]["decoder_per_token"]})
                log.info("strength %.2f: validation WER %.2f (base %.2f), %d parameters", s, wer, base, n)
                if wer > base + wer_budget:
                    break
                chosen = s
            report["wer_budget"] = {"budget": wer_budget, "base_wer": base, "search": search, "strength": chosen}
            opts = AdaptiveOptions(**{**opts.__dict__, "strength": chosen})
        arch, fam_report = prune_adaptive(model, opts, importance, grams)
        report["options"] = opts.__dict__
        report["families"] = fam_report
    counts = model_counts(model)
    report["counts_before"] = {"params": before["params"], "flops": {k: before["flops"][k] for k in ("encoder", "cross_kv", "decoder_per_token")}}
    report["counts_after"] = {"params": counts["params"], "flops": {k: counts["flops"][k] for k in ("encoder", "cross_kv", "decoder_per_token")}}
    report["architecture"] = counts["architecture"]
    if recover_steps and method != "imp":
        save_checkpoint(model, processor, out / "pruned", generation_config=model.generation_config, overwrite=True)
        recipe = load_recipe("dense", {"max_steps": recover_steps, "select": "last", "warmup_steps": min(10, recover_steps // 5),
                                       "audio_ctx": None, "eval_every": 0} | (recipe_overrides or {}))
        report["recovery"] = train(out / "pruned", data, recipe, out / "recovery", label="recover")
        recovered, processor = load_checkpoint(out / "recovery" / "model")
        # keep the recovered weights only if they are not worse on the validation clips than the
        # pruned model before recovery (a short fine-tune at a fresh learning rate can perturb a
        # model whose removed groups were already zero)
        if val_ds is not None and eval_limit:
            searched = [t["wer"] for t in report.get("wer_budget", {}).get("search", []) if t["strength"] == opts.strength]
            before_wer = searched[0] if searched else _val_wer(model, processor, val_ds, eval_limit, language)
            after_wer = _val_wer(recovered, processor, val_ds, eval_limit, language)
            kept = "recovered" if after_wer <= before_wer else "pruned"
            report["recovery_selection"] = {"val_wer_before": before_wer, "val_wer_after": after_wer, "kept": kept}
            report["val_wer"] = after_wer if kept == "recovered" else before_wer
            log.info("recovery: validation WER %.2f → %.2f; keeping the %s weights", before_wer, after_wer, kept)
            if kept == "recovered":
                model = recovered
        else:
            model = recovered
    elif val_ds is not None and eval_limit:
        report["val_wer"] = _val_wer(model, processor, val_ds, eval_limit, language)
    save_checkpoint(model, processor, out / "model", generation_config=model.generation_config, overwrite=True,
                    extra_files={"prune_report.json": report})
    atomic_write_json(out / "report.json", report)
    return report


SCORE_NAMES = {"activation": "activation", "obs": "compensated (obs)", "rms": "weight-RMS"}
ABLATION = (
    ("exact zeros only", {"strength": 0.0}),
    ("two passes, per-layer (the options given)", {}),
    ("two passes, per-layer, no compensation", {"compensate": False}),
    *((f"two passes, per-layer, {SCORE_NAMES[s]} score", {"score": s}) for s in SCORES),
    ("one pass, per-layer", {"passes": 1}),
    ("two passes, global", {"scope": "global"}),
    ("one pass, global", {"passes": 1, "scope": "global"}),
)


def ablation(model_dir, data, *, opts: AdaptiveOptions = AdaptiveOptions(), eval_split: str = "validation",
             eval_limit: int = 48, language: str = "hi") -> list[dict]:
    """Validation WER and size of the rule's variants on one checkpoint (docs/pruning.md): ``opts`` as given, then with
    one thing changed each (the other two scores, no compensation, one pass, global statistics)."""
    import copy

    from .architecture import load_checkpoint
    from .counts import model_counts
    from .data import load_speech_dataset

    model, processor = load_checkpoint(model_dir)
    ds = load_speech_dataset(data, eval_split)
    base = model_counts(model)
    importance, grams = calibrate(model, processor, data, opts, language, importance=True, grams=True)  # every variant's inputs, once
    rows = [{"variant": "unpruned", "params": base["params"]["total"], "removed_pct": 0.0,
             "encoder_gflops": base["flops"]["encoder"] / 1e9, "wer": _val_wer(model, processor, ds, eval_limit, language)}]
    from .compensation import compensated_saliency

    obs = compensated_saliency(model, grams, opts.ridge)
    for name, change in ABLATION:
        if change.get("score") == opts.score:
            continue  # the options given already judge groups by this score (their row above)
        trial = copy.deepcopy(model)
        vopts = AdaptiveOptions(**{**opts.__dict__, **change})
        prune_adaptive(trial, vopts, obs if vopts.score == "obs" else importance, grams)
        c = model_counts(trial)
        rows.append({"variant": name, "params": c["params"]["total"],
                     "removed_pct": 100 * c["params"]["removed"] / c["params"]["dense_total"],
                     "encoder_gflops": c["flops"]["encoder"] / 1e9,
                     "wer": _val_wer(trial, processor, ds, eval_limit, language)})
        log.info("%s: %.1f %% removed, WER %.2f", name, rows[-1]["removed_pct"], rows[-1]["wer"])
    return rows


def format_ablation(rows: list[dict]) -> str:
    lines = ["| variant | parameters | removed % | encoder GFLOPs | validation WER % |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['params']:,} | {r['removed_pct']:.1f} | {r['encoder_gflops']:.2f} | {r['wer']:.2f} |")
    return "\n".join(lines)
