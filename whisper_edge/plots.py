"""The experiment's figures (OUT/pareto.png, OUT/widths.png): matplotlib, imported only when a figure is drawn."""

from __future__ import annotations

from pathlib import Path

__all__ = ["plot_pareto", "plot_widths"]


def _nan(x) -> float:
    return float("nan") if x is None else float(x)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(plt, fig, path: Path) -> None:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_pareto(results: dict, path: Path) -> None:
    plt = _pyplot()
    wb = (results.get("prune") or {}).get("wer_budget")
    pr = results.get("prune") or {}
    if pr.get("rounds"):
        _plot_rounds(plt, results, path)
        return
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    if wb:
        pts = [(s["params"] / 1e6, s["wer"], s["strength"]) for s in wb["search"]]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label="SGL + adaptive, by strength (validation)")
        for x, y, s in pts:
            ax.annotate(f"s={s}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
        ax.axhline(wb["base_wer"] + wb["budget"], color="grey", ls="--", lw=0.8, label="unpruned SGL + budget")
    for name, marker in (("dense", "s"), ("sgl+adaptive", "D"), ("imp", "^")):
        m = results["models"].get(name)
        if m:
            ax.scatter([m["params"]["total"] / 1e6], [m["wer"]], marker=marker, s=50, label=f"{name} (test)")
    ax.set_xlabel("parameters (millions, as built)")
    ax.set_ylabel("WER % (Hindi normalizer)")
    ax.set_title("WER against parameters")
    ax.legend(fontsize=7)
    _save(plt, fig, path)


def _y_cap(ours: list, others: list) -> float | None:
    """A WER axis top that keeps the structured points readable when another point is far off (IMP at 55 % zeros
    once validated at 100.9 %): 1.3 × the highest structured point, at least 2 × the dense model's; None when
    everything fits."""
    ys = [y for _, y in ours + others if y is not None]
    own = [y for _, y in ours if y is not None]
    if not ys or not own:
        return None
    top = max(1.3 * max(own), 2.0 * own[0])
    return top if max(ys) > top else None


def _mark_off_scale(ax, pts: list, top: float) -> None:
    """Points above the axis top drawn at the top edge, with their value."""
    for x, y in pts:
        if y is not None and y > top:
            ax.plot([x], [top], "^", color="C1", clip_on=False)
            ax.annotate(f"{y:.1f} (off scale)", (x, top), xytext=(4, -10), textcoords="offset points", fontsize=7)


def _plot_rounds(plt, results: dict, path: Path) -> None:
    """Validation WER against attention + FFN physically removed (left) and removed or at zero (middle, the
    paper's way of counting) for the gradual rounds and IMP's rounds; with ``round_latency`` (prune.export_rounds),
    also against the measured RTF of each round's int8 bundle (right)."""
    pr = results["prune"]
    wb = pr.get("wer_budget") or {}
    lat = results.get("round_latency") or {}
    fig, axes = plt.subplots(1, 3 if lat.get("rounds") else 2, figsize=(16.5 if lat.get("rounds") else 11, 4.2), sharey=True)
    ours = [(0.0, wb.get("base_wer"))] + [(100 * r["share"], r["val_wer"]) for r in pr["rounds"]]
    imp = [(100 * _nan(p["weight_sparsity"]), p["val_wer"]) for p in results.get("imp_points") or []]
    for ax, title, imp_x in ((axes[0], "physically removed", lambda x: 0.0), (axes[1], "removed or zero (paper's count)", lambda x: x)):
        ax.plot([p[0] for p in ours], [p[1] for p in ours], "D-", label="adaptive + compensation + distillation, by round")
        if imp:
            ax.plot([imp_x(p[0]) for p in imp], [p[1] for p in imp], "^--", label="IMP, by round")
        if wb.get("base_wer") is not None:
            ax.axhline(wb["base_wer"] + wb["budget"], color="grey", ls=":", lw=0.8, label="dense + budget")
        ax.set_xlabel(f"attention + FFN parameters {title} (%)")
        ax.set_title(f"WER against parameters {title}", fontsize=9)
    if lat.get("rounds"):
        ax = axes[2]
        pts = ([(lat["dense_rtf"], wb.get("base_wer"))] if lat.get("dense_rtf") else []) + [
            (r["rtf"], r["val_wer"]) for r in lat["rounds"] if r.get("rtf")]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], "D-", label="adaptive …, by round (dense first)")
        if imp and lat.get("imp_rtf"):  # IMP's zeros keep the dense shapes: every round runs at its bundle's speed
            ax.plot([lat["imp_rtf"]] * len(imp), [p[1] for p in imp], "^", color="C1", label="IMP, by round (one bundle's RTF)")
        if wb.get("base_wer") is not None:
            ax.axhline(wb["base_wer"] + wb["budget"], color="grey", ls=":", lw=0.8)
        ax.set_xlabel("real-time factor, int8 or int8w bundle (measured, lower is faster)")
        ax.set_title("WER against measured latency", fontsize=9)
        ax.legend(fontsize=7)
    top = _y_cap(ours, imp)
    if top is not None:
        axes[0].set_ylim(0, top)  # shared by every panel
        _mark_off_scale(axes[0], [(0.0, y) for _, y in imp], top)
        _mark_off_scale(axes[1], imp, top)
        if lat.get("rounds") and lat.get("imp_rtf"):
            _mark_off_scale(axes[2], [(lat["imp_rtf"], y) for _, y in imp], top)
    axes[0].set_ylabel("validation WER % (Hindi normalizer)")
    axes[0].legend(fontsize=7)
    _save(plt, fig, path)


def plot_widths(results: dict, path: Path) -> None:
    plt = _pyplot()
    names = [n for n in ("dense", "sgl+adaptive", "imp") if n in results["models"]]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for k, name in enumerate(names):
        arch = results["models"][name]["architecture"]
        labels = [f"E{i}" for i in range(len(arch["encoder"]))] + [f"D{i}" for i in range(len(arch["decoder"]))]
        heads = [l["heads"] for l in arch["encoder"]] + [l["self_heads"] + l["cross_heads"] for l in arch["decoder"]]
        ffn = [l["ffn"] for l in arch["encoder"] + arch["decoder"]]
        x = [i + (k - (len(names) - 1) / 2) * 0.27 for i in range(len(labels))]
        a.bar(x, heads, width=0.27, label=name)
        b.bar(x, ffn, width=0.27, label=name)
        a.set_xticks(range(len(labels)), labels)
        b.set_xticks(range(len(labels)), labels)
    a.set_title("attention heads kept (decoder: self + cross)")
    b.set_title("FFN channels kept")
    a.legend(fontsize=8)
    _save(plt, fig, path)
