"""``whisper-edge fit``: the most accurate bundle that fits a device's budget, measured where it runs.

Candidates are checkpoints (``--model``, several allowed: the dense model, pruned rounds of an experiment …),
optionally pruned further to ``--shares`` of attention + FFN (adaptive rule + least-squares compensation, no
retraining: training/gradual.py), each exported in every ``--quantize`` mode. Every candidate is exported into
OUT/candidates/NAME (reused when run again), its validation WER measured with the bundle (torch-free runtime,
plain greedy decoding), and its peak RSS and real-time factor measured by the bench on this machine. The chosen
candidate is the lowest WER among those within the profile's ``memory_budget_mb`` and ``target_rtf``; it is copied
to OUT/bundle atomically, and OUT/fit.md / fit.json list every candidate. Meant to be run on the device itself;
timings taken while other work runs on the machine are worthless (the table says the machine's load).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

__all__ = ["fit", "format_fit"]

log = logging.getLogger("whisper_edge")


class FitError(ValueError):
    """No candidate meets the budget: the message says which came closest and by how much."""


def _candidate_models(models, shares, data, out: Path) -> list[tuple[str, Path]]:
    from .runtime.fsutil import claim_folder

    found = []
    for k, m in enumerate(models):
        base = Path(m)
        found.append((f"m{k}", base))
        for share in shares or ():
            path = out / "pruned" / f"m{k}-{int(round(100 * share))}"
            if not (path / "config.json").is_file():
                from .training.architecture import load_checkpoint, save_checkpoint
                from .training.counts import attention_ffn_params
                from .training.gradual import kept_architecture, prune_to_share
                from .training.pruning import AdaptiveOptions

                model, processor = load_checkpoint(base)
                dense = attention_ffn_params(kept_architecture(model, {}))
                claim_folder(path.parent, "run")
                prune_to_share(model, processor, data, AdaptiveOptions(), share, dense, "hi", compensate=True)
                save_checkpoint(model, processor, path, generation_config=model.generation_config, overwrite=True)
            found.append((f"m{k}-{int(round(100 * share))}", path))
    return found


def _same_candidate(path: Path, model_dir, quantization: str, vocab, audio_ctx: int) -> bool:
    """Whether the bundle at ``path`` was exported from ``model_dir`` with these settings (its manifest says)."""
    try:
        m = json.loads((path / "manifest.json").read_text())
        positions = json.loads((Path(model_dir) / "config.json").read_text())["max_source_positions"]
    except (OSError, ValueError, KeyError):
        return False
    made_from = Path(m.get("provenance", {}).get("model", "")).resolve()
    return (made_from == Path(model_dir).resolve() and m.get("quantization") == quantization
            and (m.get("vocab") if m.get("vocab") != "full" else None) == (vocab or None)
            and m.get("audio_ctx") == min(audio_ctx, positions))  # a longer context than the model's is not added


def fit(profile, models, data, out, *, quantizations=None, shares=(), clips: int = 24, wer_clips: int = 48,
        repeats: int = 1, vocab: str | None = None) -> dict:
    from .benchmark import dataset_clips
    from .exporter.export import ExportOptions, export_bundle
    from .exporter.validate import bundle_wer
    from .runtime.bench import run_bench
    from .runtime.fsutil import atomic_dir, atomic_write_json, atomic_write_text, claim_folder
    from .runtime.profiles import load_profile

    prof = load_profile(profile)
    out = claim_folder(out, "fit")
    quantizations = list(quantizations or dict.fromkeys([prof.quantization, "int8", "int4"]))
    from .training.data import load_speech_dataset

    texts = tuple(load_speech_dataset(data, "train")["sentence"]) if vocab else ()
    val = dataset_clips(data, "validation", wer_clips)
    cands = []
    for name, model_dir in _candidate_models(models, shares, data, out):
        for q in quantizations:
            label = f"{name}-{q}{'-' + vocab if vocab else ''}"
            path = out / "candidates" / label
            if not _same_candidate(path, model_dir, q, vocab, prof.audio_ctx):  # another model or setting: made again
                print(f"[fit] export {label}…", flush=True)
                # the export's check of a quantized variant by WER (a few clips, no bound: fit ranks by its own WER
                # below); without clips an int4 variant is judged by tensor differences it may exceed harmlessly
                gate = tuple((c["audio"], c["sentence"]) for c in val[:8]) if q != "none" else ()
                export_bundle(model_dir, path, ExportOptions(quantize=q, vocab=vocab, vocab_text=texts, profile=str(profile),
                                                             audio_ctx=prof.audio_ctx, samples=tuple(c["audio"] for c in val[:2]),
                                                             wer_clips=gate, max_wer_increase=100.0, overwrite=True))
                (path.parent / f".{label}.wer.json").unlink(missing_ok=True)
            cands.append({"label": label, "model": str(model_dir), "quantization": q, "path": str(path),
                          "bytes": sum(f["bytes"] for f in json.loads((path / "manifest.json").read_text())["files"].values())})
    for c in cands:  # WER on validation clips with the runtime itself (what ships is what is judged)
        wfile = Path(c["path"]).parent / f".{Path(c['path']).name}.wer.json"
        if wfile.is_file():
            c["wer"] = json.loads(wfile.read_text())["wer"]
            continue
        c["wer"] = bundle_wer(Path(c["path"]), [(v["audio"], v["sentence"]) for v in val], "hi")  # the export's own judge
        atomic_write_json(wfile, {"wer": c["wer"], "clips": len(val)})
    threads = min(prof.threads, os.cpu_count() or prof.threads)
    if threads < prof.threads:  # more threads than cores only slows onnxruntime down: measure what this machine can do
        log.warning("profile %s asks for %d threads; this machine has %d cores: measuring with %d", prof.name, prof.threads,
                    threads, threads)
    report = run_bench([(c["label"], "ours", c["path"]) for c in cands], dataset_clips(data, "test", clips), out / "bench",
                       data=str(data), threads=threads, providers=prof.providers, beam=prof.beam, repeats=repeats,
                       session_options=prof.session_options())
    by = {r["label"]: r for r in report["rows"]}
    for c in cands:
        r = by.get(c["label"], {})
        c.update({k: r.get(k) for k in ("peak_rss_mb", "rtf", "error")})
        c["fits"] = (not r.get("error") and r.get("peak_rss_mb") is not None and r["peak_rss_mb"] <= prof.memory_budget_mb
                     and r.get("rtf") is not None and r["rtf"] <= prof.target_rtf)
    ok = [c for c in cands if c["fits"]]
    result = {"profile": prof.name, "memory_budget_mb": prof.memory_budget_mb, "target_rtf": prof.target_rtf, "threads": threads,
              "machine": report.get("machine"), "load": _load(), "candidates": cands, "chosen": None}
    if ok:
        best = min(ok, key=lambda c: (c["wer"], c["bytes"]))
        result["chosen"] = best["label"]
        with atomic_dir(out / "bundle", kind="bundle", overwrite=True) as tmp:
            shutil.copytree(best["path"], tmp, dirs_exist_ok=True)
    atomic_write_json(out / "fit.json", result)
    atomic_write_text(out / "fit.md", format_fit(result))
    if not ok:
        def excess(c):
            rss = (c["peak_rss_mb"] or float("inf")) / prof.memory_budget_mb
            rtf = (c["rtf"] or float("inf")) / prof.target_rtf
            return max(rss, rtf)
        near = min(cands, key=excess)
        raise FitError(f"no candidate fits profile {prof.name} (peak RSS ≤ {prof.memory_budget_mb} MiB, RTF ≤ {prof.target_rtf}); "
                       f"closest: {near['label']} with {near['peak_rss_mb']} MiB and RTF {near['rtf']} "
                       f"({100 * (excess(near) - 1):.0f} % over); table in {out / 'fit.md'}. Try --shares, int4, or a "
                       "profile with a larger budget")
    return result


def _load() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def format_fit(r: dict) -> str:
    from .runtime.bench import fmt_or_dash as _f

    lines = [f"# fit: profile {r['profile']} (peak RSS ≤ {r['memory_budget_mb']} MiB, RTF ≤ {r['target_rtf']})", "",
             f"Measured on {((r.get('machine') or {}).get('platform') or 'this machine')} with {r.get('threads', '?')} threads; "
             f"load average {r.get('load')}.", "",
             "| candidate | quantization | MiB | validation WER % | peak RSS MiB | RTF | fits |", "|---|---|---:|---:|---:|---:|:---:|"]
    for c in r["candidates"]:
        lines.append(f"| {c['label']} | {c['quantization']} | {c['bytes'] / 2**20:.1f} | {c['wer']:.2f} | "
                     f"{_f(c['peak_rss_mb'], '.0f')} | {_f(c['rtf'], '.3f')} | "
                     f"{'✓' if c['fits'] else '✗'} |")
    lines += ["", f"Chosen: {r['chosen'] or 'none fits'}."]
    return "\n".join(lines) + "\n"
