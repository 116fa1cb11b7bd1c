"""The experiment's evaluation stage: every model's WER on the test split and on the hard splits, with the per-utterance
errors a paired bootstrap needs (whisper_edge/results.py)."""

from __future__ import annotations

import json
from pathlib import Path

from .runtime.fsutil import atomic_write_json
from .runtime.metrics import scored

__all__ = ["evaluate_all", "check_extra_test", "check_extra_validation", "chosen_lines", "evaluate_extra_validation"]


def evaluate_all(runs: dict, data, ev: dict, out: Path, stage) -> dict:
    """Test-split WER (PyTorch, greedy) and counts of every model, then the hard splits and ``ev["extra_test"]``'s test
    split (``ev["hard_split_models"]``: which models; None: all); each result lands in OUT/results.json as it is measured (a killed run resumes).
    ``stage(name, done, out)`` marks each evaluation on the experiment's timeline."""
    from .training.architecture import load_checkpoint
    from .training.counts import model_counts
    from .training.evaluate import EvalOptions, evaluate

    path = out / "results.json"
    results = json.loads(path.read_text()) if path.is_file() else {}
    results.setdefault("models", {})
    for name, model_dir in runs.items():
        if name in results["models"] or (name == "base (zero-shot)" and not ev.get("zero_shot", True)):
            continue
        stage(f"eval {name}", False, out)
        rep = evaluate(model_dir, data, EvalOptions(split=ev.get("split", "test"), limit=ev.get("limit"),
                                                    max_new_tokens=int(ev.get("max_new_tokens", 200))))
        model, _ = load_checkpoint(model_dir)
        counts = model_counts(model)
        results["models"][name] = {"path": str(model_dir), "wer": rep["wer"], "cer": rep["cer"], "by_group": rep.get("by_group"),
                                   "utterances": rep["utterances"], "rtf_pytorch": rep["rtf"], "params": counts["params"],
                                   "flops": {k: counts["flops"][k] for k in ("encoder", "cross_kv", "decoder_per_token")},
                                   "d_model": model.config.d_model, "vocab": model.config.vocab_size,
                                   "architecture": counts["architecture"], "per_utterance": scored(rep)}
        atomic_write_json(path, results)
    # the hard splits of the corpus, then eval.extra_test's test split: (name in results, corpus, split there)
    extra = ev.get("extra_test")
    others = [(split, data, split) for split in ev.get("hard_splits") or [] if _has_split(data, split)]
    for label, source, split in others + ([(EXTRA, extra, "test")] if extra else []):
        for name, model_dir in runs.items():
            m = results["models"].get(name)
            if ev.get("hard_split_models") is not None and name not in ev["hard_split_models"]:
                continue
            if m is None or label in m.setdefault("splits", {}):
                continue
            stage(f"eval {name} on {label}", False, out)
            rep = evaluate(model_dir, source, EvalOptions(split=split, limit=ev.get("limit"),
                                                          max_new_tokens=int(ev.get("max_new_tokens", 200))))
            prefix = f"{EXTRA}/" if label == EXTRA else ""  # the extra set's ids kept apart from the test split's
            m["splits"][label] = {"wer": rep["wer"], "cer": rep["cer"], "utterances": rep["utterances"],
                                  "skipped": rep["skipped"], "by_condition": rep.get("by_condition"),
                                  "per_utterance": [[prefix + str(u[0]), *u[1:]] for u in scored(rep)]}
            if label == EXTRA:
                m["splits"][POOLED] = pooled_split(m, m["splits"][EXTRA])
            atomic_write_json(path, results)
    return results


EXTRA, POOLED = "extra_test", "test+extra_test"  # eval.extra_test's split, and it pooled with the test split


def pooled_split(model: dict, extra: dict) -> dict:
    """The test split and the extra test set as one split: their utterances together (the extra set's ids carry an
    ``extra_test/`` prefix), WER from the summed word errors and reference words."""
    rows = list(model.get("per_utterance") or []) + list(extra["per_utterance"])
    words = sum(r[2] for r in rows)
    return {"wer": 100.0 * sum(r[1] for r in rows) / words if words else float("nan"), "utterances": len(rows),
            "per_utterance": rows}


def check_extra_test(data, extra) -> None:
    """Refuse an extra test set that is not a corpus with a test split, or that speaks a sentence of ``data`` (the
    training corpus): its reading would not be a held-out test. Before any training, so it fails in seconds."""
    _check_extra(data, extra, "test", "its reading would not be a held-out test")


def check_extra_validation(data, extra, extra_test=None, key: str = "eval.extra_validation") -> None:
    """Refuse an extra validation set (``key``: the setting that names it) that is not a corpus with a validation split,
    or that speaks a sentence of ``data`` (train: not held out; test: choosing on it would read the test) or of
    ``extra_test``. Before any training."""
    sentences = _check_extra(data, extra, "validation", "choosing on it would not be choosing on held-out clips", key)
    shared = _spoken_in(extra_test, sentences) if extra_test else []
    if shared:
        raise ValueError(f"{key}: {extra} speaks {len(shared)} sentence(s) of the extra test set "
                         f"{extra_test} (e.g. {shared[0]!r}), so choosing on it would read test sentences; build it "
                         f"with --exclude-corpus {extra_test}")


def _check_extra(data, extra, split: str, why: str, key: str | None = None) -> list[str]:
    from .training.data import DataError, load_speech_dataset

    hint = f"build one with `whisper-edge data build --out EXTRA --{split}-only --exclude-corpus {data}`"
    key = key or f"eval.extra_{split}"
    try:
        clips = load_speech_dataset(extra, split)
    except (DataError, OSError, ValueError) as exc:
        raise ValueError(f"{key}: {extra} has no readable {split} split ({exc}); {hint}") from None
    shared = _spoken_in(data, clips["sentence"])
    if shared:
        raise ValueError(f"{key}: {extra} speaks {len(shared)} sentence(s) of the training corpus {data} "
                         f"(e.g. {shared[0]!r}), so {why}; {hint}")
    return list(clips["sentence"])


def _spoken_in(data, sentences) -> list[str]:
    """The ``sentences`` that corpus ``data`` speaks in its train, validation or test split."""
    from .training.data import DataError, load_speech_dataset

    seen = set()
    for split in ("train", "validation", "test"):
        try:
            seen |= set(load_speech_dataset(data, split)["sentence"])
        except (DataError, OSError, ValueError):  # a split the training corpus lacks
            pass
    return [s for s in sentences if s in seen]


XVAL_FILE, XVAL_MODELS = "extra_validation.json", ("dense", "sgl+adaptive", "imp")


def evaluate_extra_validation(runs: dict, ev: dict, out: Path, stage) -> dict:
    """The dense model's, the chosen pruned model's and IMP's WER on ``ev["extra_validation"]``'s validation split,
    each kept in OUT/extra_validation.json as it is measured (a killed run resumes; another folder starts afresh)."""
    from .training.evaluate import EvalOptions, evaluate

    path, extra = out / XVAL_FILE, str(ev["extra_validation"])
    rec = json.loads(path.read_text()) if path.is_file() else {}
    if rec.get("corpus") != extra:
        rec = {"corpus": extra, "models": {}}
    for name in XVAL_MODELS:
        if name not in runs or name in rec["models"]:
            continue
        stage(f"extra validation {name}", False, out)
        rep = evaluate(runs[name], extra, EvalOptions(split="validation", limit=ev.get("limit"),
                                                           max_new_tokens=int(ev.get("max_new_tokens", 200))))
        rec["models"][name] = {"wer": rep["wer"], "cer": rep["cer"], "utterances": rep["utterances"],
                               "per_utterance": scored(rep)}
        atomic_write_json(path, rec)
    return rec


def _has_split(data, split: str) -> bool:
    from .training.data import load_speech_dataset

    try:
        load_speech_dataset(data, split)
        return True
    except (ValueError, KeyError, FileNotFoundError):
        return False


def extra_validation_lines(rec: dict | None) -> list[str]:
    """OUT/extra_validation.json as a markdown section: each model's WER, and its difference from the dense model's
    with a paired bootstrap 95 % interval over the clips both were scored on."""
    from .runtime.metrics import paired_by_id

    models = (rec or {}).get("models") or {}
    if not models:
        return []
    base = (models.get("dense") or {}).get("per_utterance") or []
    lines = ["", f"## Extra validation set ({rec['corpus']}: no choice of the run was made on it)", "",
             "| model | clips | WER % | difference from dense, 95 % CI |", "|---|---:|---:|---|"]
    for name, m in models.items():
        ci = paired_by_id(base, m["per_utterance"]) if name != "dense" else None
        lines.append(f"| {name} | {m['utterances']} | {m['wer']:.2f} | "
                     + (f"{ci['diff']:+.2f} [{ci['lo']:+.2f}, {ci['hi']:+.2f}] |" if ci else "|"))
    return lines


def chosen_lines(pr: dict) -> list[str]:
    """The gradual report's choice for results.md: the round, whether within budget, and the readings that confirmed it
    (prune.confirm_on, training/selection.py)."""
    c = pr.get("confirmation")
    lines = [f"\nChosen: round {pr.get('chosen_round')} ({'within' if pr.get('budget_met') else 'no round within'} the budget"
             f"{' on the confirmation clips' if c else ''})."]
    if c:
        lines += ["", f"Confirmed on {c['corpus']}'s validation split ({c['utterances']} clips no other choice saw; dense "
                      f"{c['dense_wer']:.2f}), the candidates within the budget above, the largest first:", "",
                  "| round | attention + FFN removed | WER % | − dense, 95 % interval |", "|---:|---:|---:|---:|"]
        for r in c["readings"]:
            d = r.get("diff") or {}
            lines.append(f"| {r['round']} | {100 * r['share']:.1f} % | {r['wer']:.2f} | "
                         + (f"{d['diff']:+.2f} [{d['lo']:+.2f}, {d['hi']:+.2f}] |" if d else "– |"))
    return lines
