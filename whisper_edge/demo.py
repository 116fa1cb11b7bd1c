"""`make demo` / `whisper-edge demo`: the whole chain on small data, end to end, in minutes.

import the bundled Whisper-base → build the small synthesized Hindi corpus → short dense fine-tune →
one pruning round (heads and channels chosen by the dense model, removed with a least-squares re-fit of what stays,
a few recovery steps; recipes/demo.yaml) → export verified ONNX
bundles (fp32; int8 with the Hindi vocabulary) → bench them against optimum's dense export → print
the table and write report.md with the plots. It runs `whisper-edge experiment` with
recipes/demo.yaml; the full experiment is recipes/paper.yaml (docs/results.md).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import yaml

log = logging.getLogger("whisper_edge")
# The demo's corpus: --small's mix (mostly espeak-ng) with three times the utterances and smaller held-out shares,
# 612 training utterances. 100 steps on --small's 168 left the pruned int8 bundle at 57 % WER: too few sentences.
# Its clips are under 5 s (7 s in train), so the demo's model has a 6-s window (recipes/demo.yaml, audio_ctx 300),
# and test_long joins clips up to 6 s, a window's worth.
DEMO_CORPUS = {"utterances": 720, "test_share": 0.1, "validation_share": 0.05, "long_seconds": 6.0}


def demo_config(corpus: Path) -> dict:
    from importlib import resources

    cfg = yaml.safe_load((resources.files("whisper_edge.recipes") / "demo.yaml").read_text(encoding="utf-8"))
    cfg["data"] = str(corpus)
    return cfg


def _what_ran(cfg: dict) -> str:
    """The demo's training in words, from its config (recipes/demo.yaml)."""
    pr, parts = cfg["prune"], [f"{cfg['dense']['max_steps']} dense steps"]
    if cfg["sgl"] is not None:
        parts.append(f"{cfg['steps']} SGL steps")
    if pr["schedule"] == "gradual":
        shares = ", ".join(f"{100 * t:g} %" for t in pr["targets"])
        from .training.gradual import per_round_steps

        steps = sum(per_round_steps(pr["round_steps"], len(pr["targets"])))
        parts.append(f"pruning to {shares} of attention + FFN with {steps} recovery steps")
    else:
        parts.append(f"a one-shot prune with {pr['recover_steps']} recovery steps")
    return ", ".join(parts)


def _check_earlier_run(out: Path, cfg: dict) -> None:
    """An OUT whose experiment an earlier version of the demo ran with other settings: refused in the demo's words
    (nothing is deleted; the experiment would refuse it too, asking for a --set the demo does not take)."""
    from .experiment_config import load_config
    from .reuse import check_resume

    try:
        check_resume(out / "experiment", load_config(cfg), remedy="It was made by an earlier version of the demo: run "
                     f"the demo with another --out, or remove {out} yourself")
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


def run_demo(out: Path, *, limit: int | None = 24) -> Path:
    from .experiment import run_experiment
    from .results import format_results
    from .runtime.fsutil import atomic_write_text
    from .training.corpus.build import BuildOptions, build_corpus, build_settings, settings_differ

    out = Path(out)
    t0 = time.perf_counter()
    corpus = out / "corpus-small"
    print("[demo] synthesizing the small Hindi corpus (espeak-ng + Kokoro; resumes if interrupted)", flush=True)
    opts = BuildOptions.small(corpus, **DEMO_CORPUS)
    if not (corpus / "dataset_dict.json").is_file():
        build_corpus(opts)
    summary = json.loads((corpus / "summary.json").read_text(encoding="utf-8"))
    stale = settings_differ(summary.get("settings", {}), build_settings(opts))
    if stale:
        raise SystemExit(f"{corpus} was built by an earlier version of the demo (its {', '.join(stale)} differ from "
                         f"today's); its models would be stale too: run the demo with another --out, or remove {out} "
                         "yourself")
    n_train = summary["splits"]["train"]["utterances"]
    cfg = demo_config(corpus)
    if limit:
        cfg["eval"]["limit"] = limit
    _check_earlier_run(out, cfg)
    results = run_experiment(cfg, out / "experiment")
    minutes = (time.perf_counter() - t0) / 60
    md = "\n".join([
        "# whisper-edge demo report",
        "",
        f"**A short run** ({_what_ran(cfg)}, on {corpus}: {n_train} training utterances). It shows the",
        "mechanics end to end — fine-tune, structured pruning, physically smaller ONNX bundles checked",
        "against PyTorch, the torch-free runtime benched against optimum — not the method's result: with this",
        "little training the pruned model loses accuracy. The full experiment (docs/results.md):",
        "",
        "    whisper-edge data build --out runs/corpus --utterances 2400",
        "    whisper-edge experiment --config recipes/paper.yaml --out runs/paper",
        "",
        format_results(results),
        "![WER against parameters](experiment/pareto.png)",
        "![heads and channels per layer](experiment/widths.png)",
        "",
        f"Total time: {minutes:.1f} min.",
    ])
    atomic_write_text(out / "report.md", md + "\n")
    print(format_results(results))
    print(f"report: {out / 'report.md'} ({minutes:.1f} min). This was a short demo run; "
          "see README for the full experiment (whisper-edge experiment --config recipes/paper.yaml).")
    return out / "report.md"
