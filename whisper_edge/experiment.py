"""``whisper-edge experiment``: the paper's comparison end to end, resumable stage by stage.

Stages (each skipped when its output is complete, so a killed run continues where it stopped):
import → dense fine-tune → SGL fine-tune → adaptive prune (+ recovery) → IMP at the pruned model's
sparsity and the same step budget → export (fp32, int8; pruned also with Hindi vocabulary) →
bench against PyTorch, optimum and CTranslate2 → test-split WER of every model → results.json and
results.md (+ plots).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import yaml

from .runtime.fsutil import atomic_write_json, atomic_write_text

__all__ = ["run_experiment", "load_config"]

log = logging.getLogger("whisper_edge")

DEFAULTS = {
    "model": "bundled-base",
    "data": None,
    "steps": 200,
    "dense": {},
    "sgl": {"sgl.lambda_enc": 1.5, "sgl.lambda_dec": 1.5},
    "imp": {"rounds": 4},
    "prune": {"wer_budget": 0.5, "recover_steps": 50, "eval_limit": 48},
    "export": ["none", "int8"],
    "eval": {"split": "test", "limit": None},
    "bench": {"limit": 40, "compare": ["pytorch", "optimum", "ctranslate2"], "threads": 2, "repeats": 1},
}


def load_config(path) -> dict:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    unknown = set(data) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"{path}: unknown key {sorted(unknown)[0]!r}; allowed: {', '.join(DEFAULTS)}")
    cfg = {k: (DEFAULTS[k] | data[k] if isinstance(DEFAULTS[k], dict) and isinstance(data.get(k), dict) else data.get(k, DEFAULTS[k]))
           for k in DEFAULTS}
    if not cfg["data"]:
        raise ValueError(f"{path}: 'data' (a corpus folder from 'whisper-edge data build') is required")
    return cfg


def _stage(name: str, done: bool):
    if done:
        print(f"[experiment] {name}: done earlier, skipped", flush=True)
    else:
        print(f"[experiment] {name}…", flush=True)
    return not done


def run_experiment(config_path, out) -> dict:
    from .exporter.export import ExportOptions, export_bundle
    from .training.architecture import load_checkpoint
    from .training.counts import model_counts
    from .training.data import load_speech_dataset
    from .training.evaluate import EvalOptions, evaluate
    from .training.model_import import import_model
    from .training.pruning import AdaptiveOptions, prune
    from .training.recipes import load_recipe
    from .training.train import train

    cfg = load_config(config_path)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "experiment.yaml", yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    data, steps = cfg["data"], int(cfg["steps"])
    t0 = time.perf_counter()

    base = out / "base"
    if _stage("import", (base / "config.json").is_file()):
        import_model(cfg["model"], base)
    runs = {}
    for name in ("dense", "sgl"):
        run = out / name
        if _stage(f"train {name}", (run / "summary.json").is_file()):
            train(base, data, load_recipe(name, {"max_steps": steps} | cfg[name]), run)
        runs[name] = run / "model"
    pr = cfg["prune"]
    pruned = out / "sgl-pruned"
    if _stage("prune adaptive", (pruned / "report.json").is_file()):
        prune(runs["sgl"], pruned, method="adaptive", opts=AdaptiveOptions(), wer_budget=pr.get("wer_budget"), data=data,
              recover_steps=int(pr.get("recover_steps") or 0), eval_limit=int(pr.get("eval_limit") or 48))
    runs["sgl-pruned"] = pruned / "model"
    # IMP at the pruned model's sparsity: the share of attention/FFN weights SGL+adaptive removed or zeroed
    imp = out / "imp"
    if _stage("train imp", (imp / "report.json").is_file()):
        model, _ = load_checkpoint(runs["sgl-pruned"])
        c = model_counts(model)["params"]
        from .training.train import prunable_weights, sparsity_report

        dense_model, _ = load_checkpoint(runs["dense"])
        prunable = sum(w.numel() for w in prunable_weights(dense_model))
        zero_after = c["removed"] + sparsity_report(model)["weight_sparsity"] * (prunable - c["removed"])
        target = min(0.95, max(0.05, zero_after / prunable))
        prune(base, imp, method="imp", data=data, recipe_overrides={"max_steps": steps, "imp.target_sparsity": round(target, 4),
                                                                     "imp.rounds": int(cfg["imp"].get("rounds", 4))})
    runs["imp"] = imp / "model"

    # test-split WER of every model
    ev = cfg["eval"]
    results = json.loads((out / "results.json").read_text()) if (out / "results.json").is_file() else {"models": {}}
    for name, path in [("base (zero-shot)", base), ("dense", runs["dense"]), ("sgl", runs["sgl"]),
                       ("sgl+adaptive", runs["sgl-pruned"]), ("imp", runs["imp"])]:
        if name in results["models"]:
            continue
        print(f"[experiment] eval {name}…", flush=True)
        rep = evaluate(path, data, EvalOptions(split=ev.get("split", "test"), limit=ev.get("limit"),
                                               max_new_tokens=int(ev.get("max_new_tokens", 200))))
        model, _ = load_checkpoint(path)
        counts = model_counts(model)
        results["models"][name] = {"path": str(path), "wer": rep["wer"], "cer": rep["cer"], "by_group": rep.get("by_group"),
                                   "utterances": rep["utterances"], "rtf_pytorch": rep["rtf"], "params": counts["params"],
                                   "flops": {k: counts["flops"][k] for k in ("encoder", "cross_kv", "decoder_per_token")},
                                   "architecture": counts["architecture"]}
        atomic_write_json(out / "results.json", results)

    # bundles
    texts = tuple(load_speech_dataset(data, "train")["sentence"])
    val = load_speech_dataset(data, "validation")
    from .runtime.audio import load_audio

    samples = tuple(load_audio(a["bytes"] or a["path"]) for a in val.select(range(min(4, len(val))))["audio"])
    bundles = {}
    for name in ("dense", "sgl+adaptive", "imp"):
        src = {"dense": runs["dense"], "sgl+adaptive": runs["sgl-pruned"], "imp": runs["imp"]}[name]
        variants = [(q, None) for q in cfg["export"]] + ([("int8", "hi")] if name == "sgl+adaptive" else [])
        for q, vocab in variants:
            label = f"{name} {'fp32' if q == 'none' else q}{' vocab-hi' if vocab else ''}"
            path = out / "bundles" / label.replace(" ", "-").replace("+", "-")
            if _stage(f"export {label}", (path / "manifest.json").is_file()):
                export_bundle(src, path, ExportOptions(quantize=q, vocab=vocab, vocab_text=texts if vocab else (), samples=samples))
            bundles[label] = path

    b = cfg["bench"]
    bench_dir = out / "bench"
    if _stage("bench", (bench_dir / "bench.json").is_file()):
        from .cli import main as cli_main

        args = ["bench", "--data", str(data), "--limit", str(b["limit"]), "--threads", str(b["threads"]),
                "--repeats", str(b["repeats"]), "--out", str(bench_dir), "--max-new-tokens", str(b.get("max_new_tokens", 200)), "--model", str(runs["dense"]),
                "--compare", ",".join(b["compare"]), "--bundle", *[str(p) for p in bundles.values()]]
        if cli_main(args) != 0:
            raise RuntimeError("bench failed; see the messages above")
    results["bench"] = json.loads((bench_dir / "bench.json").read_text())
    results["bundles"] = {k: sum(f["bytes"] for f in json.loads((p / "manifest.json").read_text())["files"].values())
                          for k, p in bundles.items()}
    results["seconds"] = round(time.perf_counter() - t0, 1)
    atomic_write_json(out / "results.json", results)
    atomic_write_text(out / "results.md", format_results(results))
    return results


def format_results(results: dict) -> str:
    models = results["models"]
    dense = models.get("dense")
    lines = ["| model | WER % (test) | seen | unseen | parameters | removed | encoder GFLOPs | decoder MFLOPs/token |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, m in models.items():
        g = m.get("by_group") or {}
        p, f = m["params"], m["flops"]
        rel = f" ({100 * (p['total'] - dense['params']['total']) / dense['params']['total']:+.1f} %)" if dense else ""
        lines.append(f"| {name} | {m['wer']:.2f} | {g.get('seen', {}).get('wer', float('nan')):.2f} | "
                     f"{g.get('unseen', {}).get('wer', float('nan')):.2f} | {p['total']:,}{rel} | {p['removed']:,} | "
                     f"{f['encoder'] / 1e9:.2f} | {f['decoder_per_token'] / 1e6:.1f} |")
    if "bench" in results:
        from .runtime.bench import format_table

        lines += ["", format_table(results["bench"])]
    if "bundles" in results:
        lines += ["", "| bundle | bytes |", "|---|---:|"] + [f"| {k} | {v / 2**20:.1f} MiB |" for k, v in results["bundles"].items()]
    return "\n".join(lines) + "\n"
