"""The experiment's configuration: every key with its default (DEFAULTS), and load_config, which reads a YAML file or a
dict, refuses unknown keys (nested ones too) and values out of range with a message that names the key."""

from __future__ import annotations

from pathlib import Path

import yaml

from .runtime.manifest import QUANTIZATIONS

__all__ = ["DEFAULTS", "load_config", "val_limit", "with_overrides"]

DEFAULTS = {
    "model": "bundled-base",
    "data": None,
    # build: {FOLDER: {utterances: 2400, kokoro_share: 0.25, …}} — corpora the run builds (or resumes) first, in order,
    # with `data build`'s settings; a finished one built otherwise is refused (whisper_edge/corpora.py). null: none
    "build": None,
    "steps": 200,  # SGL and IMP fine-tuning steps (matched); dense uses it too unless dense.max_steps says otherwise
    # seed: every training stage's recipe seed (the order of the training clips, the augmentation's draws): dense, SGL, IMP
    # and every recovery, unless a section sets its own (dense.seed, prune.recover_set's seed). A replication of a
    # recipe needs another seed: with the same one on the same CPU the runs differ only by rounding (docs/results.md)
    "seed": 0,
    "start": "dense",  # where SGL and IMP start: dense (the fine-tuned model) | base (the imported model, as the paper)
    "dense": {},
    # sgl: null runs no SGL stage — only where nothing reads its model: prune.schedule gradual with mask_from dense
    "sgl": {"sgl.lambda_enc": 1.5, "sgl.lambda_dec": 1.5},
    "imp": {"rounds": 4},  # null: no IMP baseline
    "prune": {"wer_budget": 0.5, "recover_steps": 50, "recover_lr": None, "eval_limit": 48,
              # recover_set: recipe fields for every recovery (the one-shot search's, the ablation's, the rounds') and
              # for IMP's training alike, e.g. {augment.p_concat: 0.6}: the two methods keep one training recipe
              "recover_set": {},
              "strengths": [0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0],
              "compensate": True,  # least-squares re-fit of out_proj / fc2 after removal (training/compensation.py)
              "ridge": 1e-2, "calib_batches": 8,
              # score: obs | activation | rms (docs/pruning.md); compare_score: the ablation's removal by another score
              "score": "obs", "compare_score": None,
              # calib_augment: the calibration clips hear the dense recipe's augmentation; ablate_noisy: the ablation
              # also on the validation clips under the test_noisy effects, and with augmented calibration as a variant
              # (calib_augment auto: chosen on the ablation's noisy rows, training/gradual.py choose_calibration)
              "calib_augment": False, "ablate_noisy": False,
              # schedule gradual (training/gradual.py): rounds to `targets` (shares of attention + FFN) from the dense
              # model, `round_steps` recovery steps each; search: one-shot strength search on the SGL model
              "schedule": "search", "targets": [0.2, 0.3, 0.4, 0.5], "round_steps": 40,
              # round_eval_every > 0: each recovery validated that often, best kept, stopped once within wer_budget
              # (round_steps is then its most) unless round_stop_early is false (every round spends round_steps, as
              # IMP's do); ablate_steps: the ablation's recoveries (default round_steps)
              "round_eval_every": 0, "round_stop_early": True, "ablate_steps": None,
              # a round keeps its recovered weights unless they validate more than keep_tolerance above the removal's
              # (null: always); calib_augment auto calibrates on augmented audio at most calib_tolerance higher on clean clips
              "keep_tolerance": None, "calib_tolerance": 0.5,
              "distill": False, "teacher_top_k": 16, "distill_alpha": 0.25,  # KL to the dense model's cached logits (α: docs/pruning.md)
              "mask_from": "auto",  # round 1's groups chosen by: dense | sgl | auto (the lower validation WER, ablation)
              "ablate": False,  # the ablation at round 1's share (docs/pruning.md)
              "export_rounds": False,  # every round exported int8 and benched: WER against measured latency
              # confirm_on: a corpus from `data build --validation-only --exclude-corpus DATA` (schedule gradual): the
              # rounds within wer_budget on DATA's validation split are read again on its validation split, the largest
              # first, and the first within wer_budget there is selected (training/selection.py); null: no confirmation
              "confirm_on": None},
    "export": ["none", "int8"],
    "vocab": True,  # also export the pruned model int8 with the Hindi vocabulary
    # int8_encoder: K (an integer ≥ 0) also exports the pruned model int8 with the Hindi vocabulary and an int8 encoder
    # that keeps the K weight groups its sensitivity scan ranks worst in fp32 (docs/export.md: the smallest-memory
    # bundle, docs/bench.md); null: not made
    "int8_encoder": None,
    "export_wer_clips": 16,  # validation clips on which an int8/fp16 bundle must stay within
    "export_max_wer_increase": 1.0,  # … this many WER points of fp32, or the export is refused
    "export_fallback": "int8w",  # a refused quantized variant is exported in this mode instead (null: none; docs/export.md)
    "eval": {"split": "test", "limit": None, "zero_shot": True,  # zero_shot: also the imported model (30-s windows: slow)
             "hard_splits": ["test_noisy", "test_long"], "max_new_tokens": 200,  # also reported when the corpus has them (docs/data.md)
             "hard_split_models": None,  # which models the hard splits evaluate (None: every model)
             # extra_test: a corpus from `data build --test-only --exclude-corpus DATA` (docs/data.md): its test split is
             # evaluated for hard_split_models as split "extra_test", and pooled with the test split as "test+extra_test"
             # (whisper_edge/evaluation.py): more utterances, a narrower interval on a WER difference
             "extra_test": None,
             # extra_validation: a corpus from `data build --validation-only --exclude-corpus DATA`: the dense, chosen
             # pruned and IMP models' WER on its validation split, after pruning (validation.md too), to tell recipe
             # variants apart on more clips than DATA's validation split; no choice of the run is made on it
             "extra_validation": None},
    "bench": {"limit": 40, "compare": ["pytorch", "optimum", "ctranslate2"], "threads": 2, "repeats": 1, "max_new_tokens": 200},
}


def with_defaults(cfg: dict) -> dict:
    """A run's config with the settings its version did not have yet as their defaults, top-level keys and a section's
    keys alike (experiment.yaml and results.json hold every setting of their day: an older run without ``seed`` trained
    with seed 0). Read by the pooled report (whisper_edge/pooled.py) and by ``--reuse`` (whisper_edge/reuse.py)."""
    if not cfg:
        return cfg
    full = {k: v for k, v in DEFAULTS.items() if k not in cfg} | cfg
    return {k: (DEFAULTS[k] | v if isinstance(DEFAULTS.get(k), dict) and isinstance(v, dict) else v) for k, v in full.items()}


def seeded(cfg: dict, fields: dict) -> dict:
    """A training stage's recipe fields with the experiment's ``seed`` under them (the stage's own seed wins)."""
    return {"seed": int(cfg.get("seed") or 0)} | fields


def recover_overrides(cfg: dict) -> dict:
    """The recipe fields every recovery and IMP's training get: the experiment's ``seed``, ``prune.recover_lr`` as the
    learning rate, then ``prune.recover_set``."""
    pr = cfg["prune"]
    return seeded(cfg, ({"learning_rate": float(pr["recover_lr"])} if pr.get("recover_lr") else {})
                  | dict(pr.get("recover_set") or {}))


def val_limit(pr: dict) -> int:
    """Validation clips for pruning's choices: ``prune.eval_limit``, or every clip when it is null (one reading for the
    one-shot search, the rounds and IMP)."""
    return 10_000 if pr.get("eval_limit") is None else int(pr["eval_limit"])


def with_overrides(data: dict, overrides: dict) -> dict:
    """``data`` with each ``--set KEY=VALUE`` applied: ``key`` replaces a top-level value (``imp=null``), ``section.field``
    one field of a section (``imp.rounds=4``; ``sgl.sgl.gamma=2``: the sgl section's recipe field sgl.gamma); a section
    that was null becomes a mapping. The result is checked by load_config like the file itself."""
    data = dict(data)
    for key, value in overrides.items():
        head, _, field = key.partition(".")
        if head not in DEFAULTS:
            raise ValueError(f"--set {key}: unknown key {head!r}; allowed: {', '.join(DEFAULTS)}")
        if not field:
            data[head] = value
        elif not isinstance(DEFAULTS[head], dict):
            raise ValueError(f"--set {key}: {head} is a value, not a section; write --set {head}=VALUE")
        else:
            data[head] = dict(data.get(head) or {}) | {field: value}
    return data


def load_config(path_or_dict, overrides: dict | None = None) -> dict:
    """The experiment's settings from a YAML file (or a dict), with ``overrides`` (``--set``) applied, merged over
    DEFAULTS and checked."""
    if isinstance(path_or_dict, dict):
        data, where = path_or_dict, "config"
    else:
        data, where = yaml.safe_load(Path(path_or_dict).read_text(encoding="utf-8")) or {}, str(path_or_dict)
    if overrides:
        data, where = with_overrides(data, overrides), f"{where} with --set {' '.join(overrides)}"
    unknown = set(data) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"{where}: unknown key {sorted(unknown)[0]!r}; allowed: {', '.join(DEFAULTS)}")
    for k in ("prune", "eval", "bench"):  # nested settings are checked too: a misspelt key is an error, not ignored
        if isinstance(data.get(k), dict):
            bad = set(data[k]) - set(DEFAULTS[k])
            if bad:
                raise ValueError(f"{where}: unknown key {k}.{sorted(bad)[0]}; allowed under {k}: {', '.join(DEFAULTS[k])}")
    cfg = {k: (DEFAULTS[k] | data[k] if isinstance(DEFAULTS[k], dict) and isinstance(data.get(k), dict) else data.get(k, DEFAULTS[k]))
           for k in DEFAULTS}
    for k in ("dense", "sgl", "prune", "eval"):  # imp and bench may be null (not run); these are always needed
        if k == "sgl" and cfg[k] is None:
            continue  # checked below, beside the pruning settings it depends on
        if not isinstance(cfg[k], dict):
            raise ValueError(f"{where}: {k} must be a mapping of settings (or left out for the defaults), got {cfg[k]!r}")
    if cfg["build"] is not None:
        from .corpora import build_options

        if not isinstance(cfg["build"], dict):
            raise ValueError(f"{where}: build must be a mapping of corpus folders to `data build` settings, or null, "
                             f"got {cfg['build']!r}")
        for folder, spec in cfg["build"].items():
            try:
                build_options(str(folder), spec)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
    if not cfg["data"]:
        raise ValueError(f"{where}: 'data' (a corpus folder from 'whisper-edge data build') is required")
    if not (isinstance(cfg["seed"], int) and not isinstance(cfg["seed"], bool) and cfg["seed"] >= 0):
        raise ValueError(f"{where}: seed must be an integer ≥ 0 (every training stage's recipe seed), got {cfg['seed']!r}")
    if cfg["start"] not in ("dense", "base"):
        raise ValueError(f"{where}: 'start' must be dense or base, got {cfg['start']!r}")
    pr = cfg["prune"]
    if not isinstance(pr.get("recover_set") or {}, dict):
        raise ValueError(f"{where}: prune.recover_set must be a mapping of recipe fields (e.g. {{augment.p_concat: 0.6}}), "
                         f"got {pr['recover_set']!r}")
    if pr.get("recover_set"):  # a misspelt field fails here, not hours later when the first recovery starts
        from .training.recipes import load_recipe

        try:
            load_recipe("dense", dict(pr["recover_set"]))
        except ValueError as exc:
            raise ValueError(f"{where}: prune.recover_set: {exc}") from None
    for key, allowed in (("calib_augment", (True, False, "auto")), ("mask_from", ("auto", "sgl", "dense"))):
        if pr[key] not in allowed:
            raise ValueError(f"{where}: prune.{key} must be {' | '.join(str(a).lower() for a in allowed)}, got {pr[key]!r}")
    if cfg["sgl"] is None and not (pr["schedule"] == "gradual" and pr["mask_from"] == "dense"):
        raise ValueError(f"{where}: sgl: null (no SGL stage) needs a pruning that does not read the SGL model: prune.schedule: "
                         f"gradual with prune.mask_from: dense (got schedule {pr['schedule']!r}, mask_from {pr['mask_from']!r})")
    if pr["calib_augment"] == "auto" and not (pr["schedule"] == "gradual" and pr["ablate"] and pr["ablate_noisy"]):
        raise ValueError(f"{where}: prune.calib_augment: auto chooses on the ablation's noisy rows: it needs prune.schedule: "
                         "gradual, prune.ablate: true and prune.ablate_noisy: true")
    if pr["confirm_on"] is not None and (pr["schedule"] != "gradual" or not isinstance(pr["confirm_on"], str)):
        raise ValueError(f"{where}: prune.confirm_on confirms the choice among gradual rounds: it needs prune.schedule: "
                         f"gradual and a corpus folder (got schedule {pr['schedule']!r}, confirm_on {pr['confirm_on']!r})")
    for key, nullable in (("keep_tolerance", True), ("calib_tolerance", False)):
        v = pr[key]
        if not (v is None and nullable) and not (isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0):
            raise ValueError(f"{where}: prune.{key} must be a WER difference ≥ 0"
                             f"{' or null (a round always keeps its recovery)' if nullable else ''}, got {v!r}")
    from .training.pruning import SCORES
    for key in ("score", "compare_score"):
        if pr[key] not in SCORES + ((None,) if key == "compare_score" else ()):
            raise ValueError(f"{where}: prune.{key} must be one of {', '.join(SCORES)}, got {pr[key]!r}")
    fb = cfg["export_fallback"]
    if fb is not None and fb not in QUANTIZATIONS[1:]:
        raise ValueError(f"{where}: export_fallback must be one of {', '.join(QUANTIZATIONS[1:])} or null, got {fb!r}")
    k8 = cfg["int8_encoder"]
    if k8 is not None and not (isinstance(k8, int) and not isinstance(k8, bool) and k8 >= 0):
        raise ValueError(f"{where}: int8_encoder must be a count of encoder weight groups kept fp32 (an integer ≥ 0, "
                         f"e.g. 2) or null (no int8-encoder bundle), got {k8!r}")
    hm = cfg["eval"].get("hard_split_models")
    if hm is not None and not (isinstance(hm, list) and all(isinstance(x, str) for x in hm)):
        raise ValueError(f"{where}: eval.hard_split_models must be a list of model names (dense, sgl, sgl+adaptive, imp) "
                         f"or null, got {hm!r}")
    for kind in ("test", "validation"):
        xt = cfg["eval"].get(f"extra_{kind}")
        if xt is not None and not isinstance(xt, str):
            raise ValueError(f"{where}: eval.extra_{kind} must be a corpus folder (from `whisper-edge data build --{kind}-only "
                             f"--exclude-corpus DATA`) or null, got {xt!r}")
    return cfg
