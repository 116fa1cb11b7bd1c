"""results.md and plots of an experiment: the paper's table on our data, the targets, the Pareto curve
and the remaining heads and channels per layer. Reads only results.json (written by experiment.py)."""

from __future__ import annotations

import logging
from pathlib import Path

from . import timeline
from .evaluation import POOLED, chosen_lines, extra_validation_lines
from .runtime.fsutil import atomic_write_text
from .runtime.metrics import paired_by_id

__all__ = ["format_results", "write_results", "bundle_rows", "targets"]

log = logging.getLogger("whisper_edge")

PAPER = {"params": 35.4, "memory": 14.25, "flops": 18.5}  # Whisper-small, CV 11 Hindi (arXiv 2510.12666)


def _pct(a, b) -> float:
    return 100.0 * (a - b) / b if b else float("nan")


def _nan(x) -> float:
    return float("nan") if x is None else float(x)


def _num(x, spec: str) -> str:  # "–" where not measured (a bundle not benched: `bench: null`)
    return "–" if x is None else format(float(x), spec)


def utterance_flops(flops: dict, tokens: float) -> float:
    """FLOPs of one utterance: one encoder window, its cross-attention K/V, and ``tokens`` decoder steps."""
    return flops["encoder"] + flops["cross_kv"] + tokens * flops["decoder_per_token"]


def _mean_tokens(results: dict) -> float:
    rows = [r for r in (results.get("bench") or {}).get("rows", []) if "error" not in r and r.get("tokens")]
    clips = (results.get("bench") or {}).get("clips") or 1
    return rows[0]["tokens"] / clips if rows else 20.0


def bundle_rows(results: dict) -> list[dict]:
    """One row per bundle: parameters (the source model's, less trimmed vocabulary rows), FLOPs, bytes, bench figures."""
    from .training.counts import flops as arch_flops
    from .training.architecture import Architecture

    bench = {r["label"]: r for r in (results.get("bench") or {}).get("rows", [])}
    out = []
    for label, b in results.get("bundles", {}).items():
        m = results["models"][b["model"]]
        trimmed = (m["vocab"] - b["vocab"]) * m["d_model"]
        arch = Architecture.from_dict(m["architecture"])
        f = arch_flops(arch, vocab=b["vocab"])
        row = {"label": label, "model": b["model"], "bytes": b["bytes"], "params": m["params"]["total"] - trimmed,
               "params_removed": m["params"]["removed"] + trimmed, "flops": {k: f[k] for k in ("encoder", "cross_kv", "decoder_per_token")}}
        r = bench.get(Path(b["path"]).name) or bench.get(label)
        if r and "error" not in r:
            row |= {k: r[k] for k in ("encoder_ms", "decoder_ms_per_token", "rtf", "peak_rss_mb", "wer", "cer")}
        out.append(row)
    return out


def targets(results: dict) -> list[tuple[str, str, bool | None]]:
    """(target, measured, met) for the compression targets (issue 16), the hard splits (issue 17) and the bundles."""
    models, rows = results["models"], bundle_rows(results)
    dense, pruned, imp = models.get("dense"), models.get("sgl+adaptive"), models.get("imp")
    out = []
    if not (dense and pruned):
        return out
    tok = _mean_tokens(results)
    d_wer, p_wer = dense["wer"], pruned["wer"]
    out.append(("WER ≤ dense + 0.5 (test split, PyTorch)", f"{p_wer:.2f} vs {d_wer:.2f}{_diff_text(dense, pruned)}",
                p_wer <= d_wer + 0.5))
    dx, px = split_entry(dense, POOLED), split_entry(pruned, POOLED)
    if dx and px:  # eval.extra_test: the same target on more utterances
        out.append((f"WER ≤ dense + 0.5 (test + extra test set, {px['utterances']} utterances, PyTorch)",
                    f"{px['wer']:.2f} vs {dx['wer']:.2f}{_diff_text(dx, px)}", px["wer"] <= dx["wer"] + 0.5))
    share = attention_ffn_removed(dense, pruned)
    out.append(("≥ 35 % of attention + FFN parameters physically removed", f"{share:.1f} %", share >= 35))
    enc = -_pct(pruned["flops"]["encoder"], dense["flops"]["encoder"])
    out.append(("encoder FLOPs per window ≥ 30 % lower", f"{enc:.1f} %", enc >= 30))
    dp, pp = dense["params"]["total"], pruned["params"]["total"]
    out.append(("whole model: parameters physically removed (paper: −35.4 %)", f"{-_pct(pp, dp):.1f} %", -_pct(pp, dp) >= 35.4))
    hi = [r for r in rows if r["model"] == "sgl+adaptive" and "vocab" in r["label"]]
    if hi:
        out.append(("≥ 55 % of the whole model removed, with the Hindi vocabulary trim", f"{-_pct(hi[0]['params'], dp):.1f} %",
                    -_pct(hi[0]["params"], dp) >= 55))
    for split in ("test_noisy", "test_long"):
        ds, ps = split_entry(dense, split), split_entry(pruned, split)
        if ds:
            out.append((f"dense WER on {split} within 10 points of test", f"{ds['wer']:.2f} vs {d_wer:.2f}",
                        ds["wer"] <= d_wer + 10))
        if ds and ps:
            loss_hard, loss_test = ps["wer"] - ds["wer"], p_wer - d_wer
            out.append((f"compressed model's WER loss on {split} no larger than on test",
                        f"{loss_hard:+.2f} vs {loss_test:+.2f}", loss_hard <= max(loss_test, 0.0)))
    du, pu = ((m.get("by_group") or {}).get("unseen", {}).get("wer") for m in (dense, pruned))
    if du is not None:  # the held-out voice family (docs/data.md): no other offline engine speaks Hindi
        out.append(("dense WER on held-out voices (test, unseen family) within 10 points of test", f"{du:.2f} vs {d_wer:.2f}",
                    du <= d_wer + 10))
        if pu is not None:
            out.append(("compressed model's WER loss on held-out voices no larger than on test", f"{pu - du:+.2f} vs {p_wer - d_wer:+.2f}",
                        pu - du <= max(p_wer - d_wer, 0.0)))
    df, pf = utterance_flops(dense["flops"], tok), utterance_flops(pruned["flops"], tok)
    out.append((f"≥ 18.5 % fewer FLOPs per utterance (encoder window + {tok:.0f} tokens)", f"{-_pct(pf, df):.1f} %", -_pct(pf, df) >= 18.5))
    if hi:
        hf = utterance_flops(hi[0]["flops"], tok)
        out.append(("≥ 18.5 % fewer FLOPs, with the Hindi vocabulary trim", f"{-_pct(hf, df):.1f} %", -_pct(hf, df) >= 18.5))
    rounds, points = (results.get("prune") or {}).get("rounds") or [], [p for p in results.get("imp_points") or []
                                                                       if p.get("weight_sparsity") is not None]
    if rounds and points:
        out.append(("structured + compensation WER within 0.5 of IMP's at matched share (validation; the paper: lower)",
                    *imp_matched(rounds, points)))
    elif imp:
        out.append(("SGL+adaptive WER within 0.5 of IMP's at matched non-zero count (the paper: lower)",
                    f"{p_wer:.2f} vs {imp['wer']:.2f}", p_wer <= imp["wer"] + 0.5))
    bench = {r["label"]: r for r in (results.get("bench") or {}).get("rows", []) if "error" not in r}
    opt = bench.get("optimum fp32")
    int8 = [r for r in rows if r["model"] == "sgl+adaptive" and "int8" in r["label"] and "rtf" in r]
    if opt and int8:
        best = min(int8, key=lambda r: r["rtf"])
        speed = opt["rtf"] / best["rtf"]
        out.append(("int8 pruned bundle ≥ 2× faster end to end than optimum's dense export",
                    f"{speed:.2f}× ({best['label']}: RTF {best['rtf']:.3f} vs {opt['rtf']:.3f})", speed >= 2))
        mem = _pct(best["peak_rss_mb"], opt["peak_rss_mb"])
        out.append((f"memory: peak RSS vs optimum dense (paper: −{PAPER['memory']} % vs its dense model)",
                    f"{mem:+.1f} %", mem <= -PAPER["memory"]))
    dense_b = [r for r in rows if r["model"] == "dense" and r["label"].endswith("fp32") and "peak_rss_mb" in r]
    pruned_b = [r for r in rows if r["model"] == "sgl+adaptive" and r["label"].endswith("fp32") and "peak_rss_mb" in r]
    if dense_b and pruned_b:
        mem = _pct(pruned_b[0]["peak_rss_mb"], dense_b[0]["peak_rss_mb"])
        out.append((f"memory: peak RSS, pruned fp32 bundle vs dense fp32 bundle (paper: −{PAPER['memory']} %)",
                    f"{mem:+.1f} %", mem <= -PAPER["memory"]))
    return out


MATCHED_SHARE = 0.02  # an IMP round counts as matched to a pruning round within 2 points of attention + FFN share


def imp_matched(rounds: list[dict], points: list[dict]) -> tuple[str, bool]:
    """Each pruning round against the IMP round nearest in share (validation WER); only pairs within MATCHED_SHARE
    are judged (the others are shown as not matched). Met when some pair is matched and every matched one is within
    +0.5 of IMP."""
    pairs = [(r, min(points, key=lambda p: abs(p["weight_sparsity"] - r["share"]))) for r in rounds]
    ok = [abs(p["weight_sparsity"] - r["share"]) <= MATCHED_SHARE for r, p in pairs]
    text = "; ".join(f"{100 * r['share']:.0f} %: {r['val_wer']:.2f} vs {p['val_wer']:.2f} ({100 * p['weight_sparsity']:.0f} %"
                     f"{'' if m else ', not matched: not judged'})" for (r, p), m in zip(pairs, ok))
    return text, any(ok) and all(r["val_wer"] <= p["val_wer"] + 0.5 for (r, p), m in zip(pairs, ok) if m)


def errors_by_utterance(report: dict) -> list[list]:
    """[id, word errors, reference words] per utterance from an eval report (``whisper-edge eval --out``: rows with
    ref and hyp, scored under the Hindi normalizer) or from results.json's compact rows."""
    rows = report.get("per_utterance") or []
    if rows and isinstance(rows[0], dict):
        from .runtime.metrics import utterance_errors

        errs = utterance_errors([r["ref"] for r in rows], [r["hyp"] for r in rows])
        return [[r["id"], e, n] for r, (e, n) in zip(rows, errs)]
    return [list(r) for r in rows]


def _check_line(row: str) -> str:
    """A refused export's check, a markdown table row, as plain words."""
    return " ".join(str(row).replace("|", " ").split())


def compare_reports(base: dict, new: dict) -> dict:
    """WER(new) − WER(base) with its paired bootstrap 95 % interval over the utterances both scored."""
    ci = paired_by_id(errors_by_utterance(base), errors_by_utterance(new))
    if ci is None:
        raise ValueError("the two reports share no utterance: compare evaluations of the same split and data")
    return ci


def split_entry(model: dict, split: str) -> dict | None:
    """A model's results on one split: the test split is the model entry itself, the others are under "splits"."""
    return model if split == "test" else (model.get("splits") or {}).get(split)


def attention_ffn_removed(dense: dict, model: dict) -> float:
    """Percentage of the dense model's attention + FFN parameters physically removed in ``model`` (results entries)."""
    from .training.architecture import Architecture
    from .training.counts import attention_ffn_params

    a_dense, a_model = (attention_ffn_params(Architecture.from_dict(m["architecture"])) for m in (dense, model))
    return 100 * (a_dense - a_model) / a_dense


def _diff_text(a: dict, b: dict) -> str:
    """The text " (difference +d, 95 % CI [lo, hi])" of b against a (split entries with per-utterance errors), or ""."""
    ci = paired_by_id(a.get("per_utterance") or [], b.get("per_utterance") or [])
    return f" (difference {ci['diff']:+.2f}, 95 % CI [{ci['lo']:+.2f}, {ci['hi']:+.2f}])" if ci else ""


def wer_differences(results: dict) -> list[str]:
    """WER of every model on every split, and its difference from the dense model with a paired bootstrap
    95 % interval (resampled by utterance)."""
    models = results["models"]
    dense = models.get("dense")
    if not dense or not dense.get("per_utterance"):
        return []
    splits = ["test"] + sorted({s for m in models.values() for s in (m.get("splits") or {})})
    lines = ["", "## WER on every split, and the difference from the dense model", "",
             "Paired bootstrap over utterances (2,000 resamples): the difference in WER points and its 95 % interval.", "",
             "| model | " + " | ".join(splits) + " |", "|---|" + "---:|" * len(splits)]

    def cell(m, split):
        entry, d = split_entry(m, split), split_entry(dense, split)
        if not entry:
            return "–"
        text = f"{entry['wer']:.2f}"
        if m is not dense and d and entry.get("per_utterance") and d.get("per_utterance"):
            ci = paired_by_id(d["per_utterance"], entry["per_utterance"])
            if ci:
                text += f" ({ci['diff']:+.2f} [{ci['lo']:+.2f}, {ci['hi']:+.2f}])"
        return text

    for name, m in models.items():
        lines.append(f"| {name} | " + " | ".join(cell(m, s) for s in splits) + " |")
    return lines + by_condition_tables(results)


def by_condition_tables(results: dict) -> list[str]:
    """WER of each model by the effects on a split's clips (noise band, reverb, telephone): where a hard split's
    errors come from (training/evaluate.py ``by_condition``)."""
    lines = []
    models = results["models"]
    for split in sorted({s for m in models.values() for s in (m.get("splits") or {})}):
        have = {n: (m.get("splits") or {}).get(split, {}).get("by_condition") for n, m in models.items()}
        have = {n: c for n, c in have.items() if c}
        if not have:
            continue
        conds = list(dict.fromkeys(c for table in have.values() for c in table))
        lines += ["", f"### {split} by condition (WER %; a clip counts in each of its conditions)", "",
                  "| condition | clips | " + " | ".join(have) + " |", "|---|---:|" + "---:|" * len(have)]
        for c in conds:
            n = next(t[c]["utterances"] for t in have.values() if c in t)
            lines.append(f"| {c} | {n} | " + " | ".join(f"{t[c]['wer']:.2f}" if c in t else "–" for t in have.values()) + " |")
    return lines


def pruned_model_note(results: dict) -> str | None:
    """What the row named sgl+adaptive is: the name is its key in every run's results.json (pooling and bundles read
    it), kept when no SGL stage ran (``sgl: null``, round 1's groups chosen by the dense model)."""
    pr = results.get("prune") or {}
    r = next((r for r in pr.get("rounds") or [] if r.get("round") == pr.get("chosen_round")), None)
    by = {"dense": "; round 1's groups chosen by the dense model", "sgl": "; round 1's groups chosen by the SGL model"}
    cfg = results.get("config") or {}
    no_sgl = "; no SGL stage ran" if "sgl" in cfg and cfg["sgl"] is None else ""
    return r and (f"sgl+adaptive: round {r['round']} of {len(pr['rounds'])} of the gradual schedule, {100 * r['share']:.1f} % "
                  f"of attention + FFN removed by the adaptive rule{by.get(pr.get('mask_from'), '')}{no_sgl}.")


def format_results(results: dict) -> str:
    models = results["models"]
    dense = models.get("dense")
    tok = _mean_tokens(results)
    lines = ["## Models (PyTorch, greedy, test split)", "",
             "| model | WER % | seen | unseen | CER % | parameters | vs dense | non-zero | removed | encoder GFLOPs | decoder MFLOPs/token | GFLOPs / utterance |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, m in models.items():
        g = m.get("by_group") or {}
        p, f = m["params"], m["flops"]
        rel = f"{_pct(p['total'], dense['params']['total']):+.1f} %" if dense else ""
        lines.append(f"| {name} | {m['wer']:.2f} | {_nan(g.get('seen', {}).get('wer')):.2f} | {_nan(g.get('unseen', {}).get('wer')):.2f} | "
                     f"{m['cer']:.2f} | {p['total']:,} | {rel} | {p['nonzero']:,} | {p['removed']:,} | {f['encoder'] / 1e9:.2f} | "
                     f"{f['decoder_per_token'] / 1e6:.1f} | {utterance_flops(f, tok) / 1e9:.2f} |")
    n = next(iter(models.values()))["utterances"] if models else 0
    lines += ["", f"{n} test utterances; seen / unseen: voices heard in training or held out. GFLOPs / utterance: one encoder "
              f"window + cross-attention K/V + {tok:.0f} decoder tokens (the mean of the bench clips)."]
    note = pruned_model_note(results) if "sgl+adaptive" in models else None
    lines += ["", note] if note else []
    lines += wer_differences(results)
    rows = bundle_rows(results)
    if rows:
        b = results.get("bench") or {}
        lines += ["", "## Bundles (ONNX Runtime, our torch-free runtime)", ""]
        if b:
            lines += [f"{b['clips']} test clips ({b['audio_seconds']} s of audio), {b['threads']} threads, beam {b['beam']}, "
                      f"best of {b['repeats']} after a warm-up; peak RSS is the process's VmHWM.", ""]
        lines += ["| bundle | MiB | parameters | vs dense | decoder MFLOPs/token | encoder ms / window | decoder ms / token | RTF | peak RSS MiB | WER % |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        dp = dense["params"]["total"] if dense else None
        for r in rows:
            lines.append(f"| {r['label']} | {r['bytes'] / 2**20:.1f} | {r['params']:,} | {_pct(r['params'], dp):+.1f} % | "
                         f"{r['flops']['decoder_per_token'] / 1e6:.1f} | " + " | ".join(_num(r.get(k), f) for k, f in (
                             ("encoder_ms", ".0f"), ("decoder_ms_per_token", ".1f"), ("rtf", ".3f"), ("peak_rss_mb", ".0f"), ("wer", ".2f"))) + " |")
        peers = [r for r in b.get("rows", []) if r["backend"] != "ours"]
        if peers:
            lines += ["", "Peers on the same clips (the dense fine-tuned model):", "",
                      "| backend | encoder ms / window | decoder ms / token | RTF | peak RSS MiB | WER % |", "|---|---:|---:|---:|---:|---:|"]
            for r in peers:
                if "error" in r:
                    lines.append(f"| {r['label']} | failed: {r['error'][:80]} | | | | |")
                else:
                    lines.append(f"| {r['label']} | {_nan(r['encoder_ms']):.0f} | {_nan(r['decoder_ms_per_token']):.1f} | {r['rtf']:.3f} | "
                                 f"{r['peak_rss_mb']:.0f} | {r['wer']:.2f} |")
    instead = {v["replaces"]: k for k, v in (results.get("bundles") or {}).items() if v.get("replaces")}
    for label, why in (results.get("refused_bundles") or {}).items():
        lines += ["", f"Export of **{label}** was refused by its validation: {why}"
                      + (f"; **{instead[label]}** shipped instead (`export_fallback`)" if label in instead else "")]
    t = targets(results)
    if t:
        lines += ["", "## Targets", "", "| target | measured | met |", "|---|---|:---:|"]
        lines += [f"| {a} | {b} | {'✓' if ok else '✗'} |" for a, b, ok in t]
    lines += pruning_sections(results)
    lines += timeline.section(results.get("timeline") or [])
    wb = (results.get("prune") or {}).get("wer_budget")
    if wb and not (results.get("prune") or {}).get("rounds"):
        lines += ["", f"## Pruning strength search (validation WER, budget +{wb['budget']} over {wb['base_wer']:.2f})", "",
                  "| strength | parameters | validation WER % | encoder GFLOPs |", "|---:|---:|---:|---:|"]
        for s in wb["search"]:
            ef = s.get("encoder_flops")
            lines.append(f"| {s['strength']} | {s['params']:,} | {s['wer']:.2f} | {'' if ef is None else format(ef / 1e9, '.2f')} |")
        lines.append(f"\nChosen strength: {wb['strength']}.")
    return "\n".join(lines) + "\n"


def pruning_sections(results: dict) -> list[str]:
    """The gradual rounds (operating points), IMP's rounds, and the ablation at round 1's share."""
    pr = results.get("prune") or {}
    rounds, lines = pr.get("rounds") or [], []
    wb = pr.get("wer_budget") or {}
    if rounds:
        lines += ["", f"## Gradual pruning: the operating points (validation WER; dense {wb.get('base_wer', float('nan')):.2f}, "
                      f"budget +{wb.get('budget')})", "",
                  f"Round 1's groups chosen by the {pr.get('mask_from') or 'dense'} model; groups judged by the "
                  f"{(pr.get('options') or {}).get('score') or 'activation'} score; distillation teacher: "
                  f"{'yes' if pr.get('teacher') else 'none'}; removal calibrated on "
                  f"{'augmented' if (pr.get('options') or {}).get('calib_augment') else 'clean'} audio.", "",
                  "| round | attention + FFN removed | parameters | encoder GFLOPs | WER after removal + compensation | "
                  "recovery steps | WER after recovery | kept |", "|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in rounds:
            recovered = r.get("val_wer_recovered", r["val_wer"] if r.get("kept", "recovered") == "recovered" else None)
            lines.append(f"| {r['round']} | {100 * r['share']:.1f} % | {r['params']:,} | {r['encoder_flops'] / 1e9:.2f} | "
                         f"{_nan(r.get('val_wer_pruned')):.2f} | {(r.get('recovery') or {}).get('steps', 0)} | "
                         f"{_num(recovered, '.2f')} | {r.get('kept', 'recovered')} |")  # – : a round without recovery steps
        lines += chosen_lines(pr)  # and the readings that confirmed it (prune.confirm_on)
        lat = results.get("round_latency") or {}
        if lat.get("rounds"):
            lines += ["", "Every round's model exported int8 (in `export_fallback`'s mode where the int8 WER check refused it) and benched on the "
                          "bench's clips and threads (OUT/bench-rounds; "
                          f"dense int8 RTF {_nan(lat.get('dense_rtf')):.3f}, IMP int8 {_nan(lat.get('imp_rtf')):.3f}):", "",
                      "| round | attention + FFN removed | validation WER % | bundle | encoder ms / window | RTF | peak RSS MiB |",
                      "|---:|---:|---:|---|---:|---:|---:|"]
            lines += [f"| {r['round']} | {100 * r['share']:.1f} % | {r['val_wer']:.2f} | " + (
                f"{r.get('quantization', 'int8')} | {r['encoder_ms']:.0f} | {r['rtf']:.3f} | {r['peak_rss_mb']:.0f} |"
                if r.get("rtf") else "none | | | |") for r in lat["rounds"]]
            for r in lat["rounds"]:  # {mode: the refused check}; "refused" (the int8 check alone) until session 16
                no = r.get("refusals") or ({"int8": r["refused"]} if r.get("refused") else {})
                if no:
                    lines.append(f"\nRound {r['round']}: " + "; ".join(
                        f"{m} refused by its WER check ({_check_line(c)})" for m, c in no.items()) + (
                        ": no bundle." if not r.get("rtf") else "."))
    imp = results.get("imp_points") or []
    if imp:
        lines += ["", "## IMP: the operating points (validation WER at the end of each round)", "",
                  "Unstructured zeros: nothing is physically removed, the exported graphs keep the dense shapes.", "",
                  "| step | attention + FFN weights at zero | validation WER % |", "|---:|---:|---:|"]
        lines += [f"| {p['step']} | {100 * _nan(p['weight_sparsity']):.1f} % | {p['val_wer']:.2f} |" for p in imp]
    abl = (results.get("ablation") or {}).get("rows") or []
    if abl:
        lines += ["", f"## Ablation at {100 * abl[0].get('target', 0):.0f} % of attention + FFN (validation WER)", ""]
        lines += ablation_table(abl)
        if rounds:
            r1 = rounds[0]
            lines.append(f"| compensation + recovery (cross-entropy + distillation): gradual round 1 | {100 * r1['share']:.1f} % | "
                         f"{r1.get('val_wer_recovered', r1['val_wer']):.2f} |" + (" |" if _has_noisy(abl) else ""))
    return lines + extra_validation_lines(results.get("extra_validation"))


def _has_noisy(rows: list[dict]) -> bool:
    return any("val_wer_noisy" in r for r in rows)


def ablation_table(rows: list[dict]) -> list[str]:
    """The removal ablation's rows (training/gradual.py ``ablate``) as a markdown table; a noisy-validation column when
    the rows were also measured under the test_noisy effects."""
    noisy, long = _has_noisy(rows), any("val_wer_long" in a for a in rows)
    head = ["| variant | removed | validation WER % |" + (" noisy validation WER % |" if noisy else "")
            + (" long-window validation WER % |" if long else ""),
            "|---|---:|---:|" + ("---:|" if noisy else "") + ("---:|" if long else "")]
    return head + [f"| {a['variant']} | {100 * a['share']:.1f} % | {a['val_wer']:.2f} |"
                   + (f" {_nan(a.get('val_wer_noisy')):.2f} |" if noisy else "")
                   + (f" {_nan(a.get('val_wer_long')):.2f} |" if long else "") for a in rows]


def write_results(results: dict, out: Path) -> None:
    md = format_results(results)
    atomic_write_text(Path(out) / "results.md", md)
    from .plots import plot_pareto, plot_widths

    try:
        plot_pareto(results, Path(out) / "pareto.png")
        plot_widths(results, Path(out) / "widths.png")
    except ImportError:
        log.warning("matplotlib is not installed: no plots (pip install whisper-edge[bench])")
