"""Several experiment runs of one recipe, pooled: how far each compressed model is from its own dense model (or IMP).

One run's test split (192 utterances here) gives a WER difference whose 95 % interval is about ±1.3 points wide — wider
than the 0.5-point margin the compression target allows. Runs of the same recipe on different dense models (another
seed, another session) are repeated measurements of the recipe: ``pool_runs`` reads each run's results.json and
reports, per model and split, every run's difference from its own dense model and their mean with a bootstrap interval
(``runtime.metrics.pooled_bootstrap``: the same utterances drawn for every run where they share a test split).

That bootstrap answers "which utterances were tested" for the trained models at hand; it does not see how much the
difference moves from one training run to the next. With three runs or more, ``across_runs`` gives the other interval:
Student's t over the per-run differences (n − 1 degrees of freedom), the recipe's mean difference on these utterances
with the run-to-run spread as its only noise. Both are printed; neither contains the other's source of noise.
"""
from __future__ import annotations

import json
from pathlib import Path

from .experiment_config import with_defaults
from .results import attention_ffn_removed, split_entry
from .runtime.metrics import matched_errors

MODELS = ("sgl+adaptive", "imp", "sgl")
SPLITS = ("test", "test_long", "test_noisy", "test+extra_test")  # pooled by default, where the runs have them


# Student's t, two-sided 95 % (the 0.975 quantile), for 1..10 degrees of freedom; more runs use scipy when it is there
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228)


def across_runs(per_run: list[float]) -> tuple[float, float] | None:
    """95 % interval of the mean of ``per_run`` from their spread alone (Student's t); None below three runs (two give
    one degree of freedom: an interval ±12.7 standard errors wide says nothing)."""
    import statistics

    n = len(per_run)
    if n < 3:
        return None
    if n - 1 <= len(_T975):
        t = _T975[n - 2]
    else:
        try:
            from scipy.stats import t as student
            t = float(student.ppf(0.975, n - 1))
        except ImportError:  # the largest tabled quantile: wider than the true one, never narrower
            t = _T975[-1]
    mean, half = statistics.fmean(per_run), t * statistics.stdev(per_run) / n ** 0.5
    return mean - half, mean + half


def _load(run: Path) -> dict:
    path = run / "results.json" if run.is_dir() else run
    if not path.is_file():
        raise FileNotFoundError(f"{run}: no results.json — give the --out folder of a finished `whisper-edge "
                                f"experiment` run (or its results.json)")
    try:
        res = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not readable JSON ({exc}); is the experiment still writing it?") from exc
    if "dense" not in res.get("models", {}):
        raise ValueError(f"{path}: no dense model evaluated yet — the experiment has not reached its evaluations")
    return res


def _rows(model: dict, split: str) -> list | None:
    return (split_entry(model, split) or {}).get("per_utterance") or None


def _removed(res: dict, name: str) -> float | None:
    """Share of attention + FFN parameters physically removed (structured) or at zero (the paper's count)."""
    from .training.architecture import Architecture
    from .training.counts import attention_ffn_params

    dense, m = res["models"]["dense"], res["models"].get(name)
    if not m or "architecture" not in m or "architecture" not in dense:
        return None
    removed = attention_ffn_removed(dense, m)
    if removed:
        return removed
    return 100 * (m["params"]["total"] - m["params"]["nonzero"]) / attention_ffn_params(Architecture.from_dict(dense["architecture"]))


def pool_runs(runs: list[str | Path], splits: tuple[str, ...] = SPLITS,
              against: str = "dense", by: str | None = None) -> dict:
    """Per model (sgl+adaptive, imp, sgl) and split: every run's WER difference from its own ``against`` model (dense,
    or imp: structured against unstructured at the same share), their mean and its 95 % interval. A model or split a
    run lacks is left out of that row (the row says how many runs it has). ``by``: a column of the runs' corpora
    (engine, voice_group …; whisper_edge/utterance_groups.py): each row split into one per value, its ``group``."""
    if not runs:
        raise ValueError("pool needs at least one experiment run folder")
    loaded = [(str(r), _load(Path(r))) for r in runs]
    groups = None
    if by:
        from .utterance_groups import utterance_groups

        cache: dict = {}
        groups = {run: utterance_groups(res, by, cache) for run, res in loaded}
    rows = []
    for name in [m for m in MODELS if m != against]:
        for split in splits:
            scored = [(run, res, *(_rows(res["models"].get(x) or {}, split) for x in (against, name))) for run, res in loaded]
            scored = [(run, res, d, m) for run, res, d, m in scored if d and m]
            if groups is None:
                rows += _pooled_row(scored, name, split)
                continue
            for value in sorted({_group(groups, run, split, u[0]) for run, _, d, _ in scored for u in d}):
                rows += _pooled_row([(run, res, *([u for u in x if _group(groups, run, split, u[0]) == value] for x in (d, m)))
                                     for run, res, d, m in scored], name, split, value)
    return {"runs": [r for r, _ in loaded], "against": against, "rows": rows, "by": by,
            "recipe_differences": recipe_differences([res for _, res in loaded]),
            "unfinished": [i for i, (_, res) in enumerate(loaded) if not res.get("config")],
            "shared_dense": shared_dense([res for _, res in loaded])}


def _group(groups: dict, run: str, split: str, uid: str) -> str:
    try:
        return groups[run][split][uid]
    except KeyError:
        raise ValueError(f"{run}: utterance {uid} of split {split} is not in the corpus its config names — the corpus "
                         "there is not the one the run was tested on") from None


def _pooled_row(scored: list, name: str, split: str, group: str | None = None) -> list[dict]:
    """The row of one model and split (and group): its runs' differences pooled; none when no run has both models."""
    from .runtime.metrics import pooled_bootstrap

    pairs, ids, used = [], [], []
    for run, res, d, m in scored:
        ea, eb, u = matched_errors(d, m)  # in order of id: one order for every run
        if u:
            pairs.append((ea, eb))
            ids.append(u)
            used.append((run, res))
    if not pairs:
        return []
    ci = pooled_bootstrap(pairs, ids)
    runs_ci = across_runs(ci["per_run"])
    row = {"model": name, "split": split, "runs": [r for r, _ in used], "removed": [_removed(res, name) for _, res in used]}
    return [row | ({"group": group} if group is not None else {}) | ci
            | ({"runs_lo": runs_ci[0], "runs_hi": runs_ci[1]} if runs_ci else {})]


# settings that shape none of the pooled models: where data and reports go, what is evaluated, exported or benched
_NOT_THE_RECIPE = ("build", "data", "eval", "bench", "export", "export_fallback", "export_max_wer_increase",
                   "export_wer_clips", "vocab", "int8_encoder", "prune.export_rounds", "prune.compare_score")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        out |= _flat(v, f"{prefix}{k}.") if isinstance(v, dict) and v else {f"{prefix}{k}": v}
    return out


def recipe_differences(results: list[dict]) -> dict[str, list]:
    """The experiment settings (results.json's ``config``, flattened to ``section.field``) on which the runs disagree,
    each with every run's value (None where a run has no record of it): runs of different recipes pooled as one. Only
    the settings that shape the models count (not where the data, reports and bundles go, nor what is evaluated)."""
    flats = [_kept_last(_flat(with_defaults(r.get("config") or {})), r) for r in results]
    if len(results) < 2 or not all(flats):
        return {}
    keys = sorted(set().union(*flats))
    # seed (the experiment's or a stage's): the draw, which repetitions of one recipe are meant to differ by
    ignore = _NOT_THE_RECIPE + ("seed",) + (("sgl",) if all(_dense_groups(f) for f in flats) else ())
    keep = [k for k in keys if not k.endswith(".seed") and not any(k == x or k.startswith(x + ".") for x in ignore)]
    return {k: [f.get(k) for f in flats] for k in keep if len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1}


def _kept_last(flat: dict, res: dict) -> dict:
    """``prune.recover_set.select`` as it acted: a recovery that kept its best reading kept its last weights where the
    best reading was the last (``best_step`` = ``steps`` in every round), which is what ``select: last`` keeps."""
    key, rounds = "prune.recover_set.select", [r.get("recovery") for r in (res.get("prune") or {}).get("rounds") or []]
    if flat and flat.get(key) in (None, "best") and rounds and all(
            r and r.get("best_step") is not None and r.get("best_step") == r.get("steps") for r in rounds):
        return flat | {key: "last"}
    return flat


def _dense_groups(flat: dict) -> bool:
    """A run whose rounds took the dense model's groups: its SGL stage (or ``sgl: null``, none) shaped only the "sgl"
    row, not the pruned model, so SGL settings that differ between such runs do not make their pruned models differ."""
    return flat.get("prune.schedule") == "gradual" and flat.get("prune.mask_from") == "dense"


def shared_dense(results: list[dict], min_utterances: int = 50) -> list[list[int]]:
    """Groups (0-based run indices) of runs whose dense models scored the same errors on every utterance of every split
    they share (at least ``min_utterances`` of them): one dense model (``--reuse``), so those runs repeat only what
    follows it and are not independent repetitions of the recipe."""
    def errors(res):
        dense = res["models"]["dense"]
        return {split: {u[0]: u[1] for u in rows} for split in SPLITS if (rows := _rows(dense, split))}

    scored, groups = [errors(r) for r in results], []
    for i in range(len(results)):
        for j in range(i + 1, len(results)):
            common = [(s, u) for s in scored[i].keys() & scored[j].keys() for u in scored[i][s].keys() & scored[j][s].keys()]
            if len(common) >= min_utterances and all(scored[i][s][u] == scored[j][s][u] for s, u in common):
                group = next((g for g in groups if i in g), None)
                if group is None:
                    groups.append([i, j])
                elif j not in group:
                    group.append(j)
    return groups


def pooled_table(pooled: dict) -> str:
    """results.md-style Markdown of ``pool_runs``' answer."""
    by = pooled.get("by")
    lines = [f"| model | split |{f' {by} | utterances |' if by else ''} runs | attention + FFN removed or zero | per run | "
             "mean difference [95 % CI] | across runs (t, ≥ 3 runs) |", f"|---|---|{'---|---:|' if by else ''}---:|---|---|---:|---:|"]
    for r in pooled["rows"]:
        removed = ", ".join("–" if x is None else f"{x:.1f} %" for x in r["removed"])
        known = [x for x in r["removed"] if x is not None]
        if known and max(known) - min(known) > 1.0:
            removed += " — **shares differ: the mean mixes operating points**"
        per_run = ", ".join(f"{d:+.2f}" for d in r["per_run"])
        group = f" {r['group']} | {max(r['utterances'])} |" if by else ""
        lines.append(f"| {r['model']} | {r['split']} |{group} {len(r['runs'])} | {removed} | {per_run} | "
                     f"{r['diff']:+.2f} [{r['lo']:+.2f}, {r['hi']:+.2f}] | "
                     + (f"[{r['runs_lo']:+.2f}, {r['runs_hi']:+.2f}] |" if "runs_lo" in r else "– |"))
    runs = "; ".join(f"{i + 1}. {r}" for i, r in enumerate(pooled["runs"]))
    return "\n".join(lines + ["", *_warnings(pooled), f"Runs (per-run columns in this order): {runs}. Each difference is from the run's "
                              f"own {pooled.get('against', 'dense')} model; the mean weighs every run the same; paired bootstrap over utterances "
                              "(2,000 resamples; the same utterances for every run where they share the split). Across runs: "
                              "Student's t over the per-run differences, the run-to-run spread as the only noise."])


def _warnings(pooled: dict) -> list[str]:
    """Lines above the runs' list when the pooled runs are not repetitions of one recipe on independent dense models."""
    out = []
    if unfinished := pooled.get("unfinished"):  # an experiment writes its config into results.json when it ends
        out += [f"**Run{'s' if len(unfinished) > 1 else ''} {', '.join(str(i + 1) for i in unfinished)}: no settings "
                "recorded** (results.json without `config`: the experiment has not finished), so the runs' settings "
                "were not compared.", ""]
    if diffs := pooled.get("recipe_differences"):
        def values(vals):
            by = {}
            for i, v in enumerate(vals):
                by.setdefault(json.dumps(v, sort_keys=True), []).append(str(i + 1))
            return ", ".join(f"{v} (run{'s' if len(r) > 1 else ''} {', '.join(r)})" for v, r in by.items())
        out += ["**The runs' settings differ** (the mean may mix recipes): "
                + "; ".join(f"`{k}` {values(v)}" for k, v in diffs.items()) + ".", ""]
    for group in pooled.get("shared_dense") or []:
        out += [f"**Runs {', '.join(str(i + 1) for i in group)} have one dense model** (the same errors on every "
                "utterance): they repeat only what follows it, so they are not independent repetitions and the "
                "across-runs interval counts them as if they were.", ""]
    return out
