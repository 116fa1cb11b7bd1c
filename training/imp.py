"""Iterative Magnitude Pruning (the baseline): global magnitude pruning in rounds, and the sparsity counts
every method reports."""

from __future__ import annotations

import math

import torch

from .groups import group_scores

__all__ = ["prunable_weights", "imp_prune_", "imp_schedule", "lr_factor", "sparsity_report"]


def prunable_weights(model) -> list[torch.nn.Parameter]:
    """The Linear weights of attention and FFN sublayers (what SGL groups cover; embeddings, convs,
    norms and biases are left dense, as in the SGL run)."""
    out = []
    for layers in (model.model.encoder.layers, model.model.decoder.layers):
        for layer in layers:
            for att in (layer.self_attn, getattr(layer, "encoder_attn", None)):
                if att is not None and hasattr(att, "q_proj"):
                    out += [att.q_proj.weight, att.k_proj.weight, att.v_proj.weight, att.out_proj.weight]
            if layer.fc1.out_features:
                out += [layer.fc1.weight, layer.fc2.weight]
    return out


@torch.no_grad()
def imp_prune_(model, sparsity: float, structured: bool = False) -> None:
    """Global magnitude pruning to ``sparsity`` (share of prunable weights at zero), in place."""
    weights = prunable_weights(model)
    if structured:
        from .groups import group_norms, grouped, iter_groups

        fams = [(views, *group_norms(views)) for _, _, _, views in iter_groups(model)]
        rms = torch.cat([(l2.sqrt() / math.sqrt(p)).float() for _, _, l2, p in fams])
        sizes = torch.cat([torch.full_like(l2, p, dtype=torch.float64) for _, _, l2, p in fams])
        order = torch.argsort(rms)
        cut = int(torch.searchsorted(torch.cumsum(sizes[order], 0), sparsity * sizes.sum()))
        thr = rms[order[min(cut, len(order) - 1)]]
        for (parts, groups), _, l2, p in fams:
            keep = ((l2.sqrt() / math.sqrt(p)) >= thr).to(parts[0][0].dtype)
            for w, layout in parts:
                grouped(w, layout, groups).mul_(keep[:, None] if layout == "rows" else keep[None, :, None])
        return
    flat = torch.cat([w.detach().abs().reshape(-1).float() for w in weights])
    k = int(sparsity * flat.numel())
    if k < 1:
        return
    thr = torch.kthvalue(flat.cpu(), k).values.item()
    for w in weights:
        w.mul_((w.abs() > thr).to(w.dtype))


def imp_schedule(target: float, rounds: int, max_steps: int, sparsities: list[float] | None = None,
                 round_steps: list[int] | None = None) -> list[tuple[int, float]]:
    """(step, sparsity) pairs: round r prunes at step (r−1)·S/R to 1 − (1 − target)^(r/R), or to ``sparsities[r−1]``
    when given (then R = len(sparsities)); with ``round_steps`` round r starts after the steps of the rounds before it."""
    shares = [float(s) for s in sparsities] if sparsities else [1 - (1 - target) ** (r / rounds) for r in range(1, rounds + 1)]
    if round_steps:
        starts = [sum(round_steps[:i]) for i in range(len(shares))]
    else:
        starts = [int(i * max_steps / len(shares)) for i in range(len(shares))]
    return list(zip(starts, shares))


def lr_factor(step: int, max_steps: int, warmup: int, starts: list[int] | tuple[int, ...] = (0,)) -> float:
    """The learning rate's factor at optimizer step ``step`` (0-based): linear warmup over ``warmup`` steps, then a
    linear decay to 0 at ``max_steps``. With several ``starts`` (IMP's round starts, ``imp.lr_per_round``) the schedule
    restarts at each: a round of n steps warms up over min(warmup, n // 5) steps and decays to 0 at the next start,
    as a structured round trained as its own run of n steps does (training/gradual.py)."""
    if len(starts) <= 1:
        if step < warmup:
            return (step + 1) / (warmup + 1)
        return max(0.0, (max_steps - step) / max(1, max_steps - warmup))
    s0 = max((s for s in starts if s <= step), default=0)
    end = min((s for s in starts if s > step), default=max_steps)
    n = end - s0
    return lr_factor(step - s0, n, min(warmup, n // 5))


@torch.no_grad()
def sparsity_report(model) -> dict:
    zero_heads = zero_channels = heads = channels = 0
    for s in group_scores(model):
        n = int((s["norm"] == 0).sum())
        if s["kind"] == "ffn":
            zero_channels += n
            channels += len(s["norm"])
        else:
            zero_heads += n
            heads += len(s["norm"])
    ws = prunable_weights(model)
    total = sum(w.numel() for w in ws)
    zeros = sum(int((w == 0).sum()) for w in ws)
    return {"zero_heads": zero_heads, "heads": heads, "zero_channels": zero_channels, "channels": channels,
            "weight_sparsity": zeros / total if total else 0.0}
