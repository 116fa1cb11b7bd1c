"""Compensation at prune time: re-fit each pruned sublayer's output projection by ridge least squares.

Removing heads or FFN channels deletes columns of the sublayer's output projection (``out_proj`` for
attention, ``fc2`` for the FFN). What the kept columns and the bias add can be re-fitted so that the
sublayer's output stays what it was on calibration activations (Kwon et al. 2022, "A Fast Post-Training
Pruning Framework for Transformers"; FLAP's bias compensation is the special case of re-fitting the bias
alone). For a projection ``y = W x + b`` with input ``x`` (its in-features), kept input columns K::

    min over (W'_K, b')   Σ_tokens ‖W'_K x_K + b' − (W x + b)‖²  +  λ ‖W'_K − W_K‖²

a ridge regression toward the original weights (λ → ∞ is no compensation). With ``z = [x_K, 1]`` it is
closed form: ``(ZᵀZ + λD) Θ = Zᵀ[x, 1] Θ_full + λ D Θ_K`` (D = identity on the weights, 0 on the bias).
Every term is a block of one Gram matrix ``H = Σ [x,1][x,1]ᵀ`` per sublayer, accumulated once on the
unpruned model, so trying another pruning strength costs one small solve per sublayer, not another pass
over the data. λ is relative: ``ridge × mean(diag(ZᵀZ))``. All of it runs in float64 outside any autocast.
"""

from __future__ import annotations

import logging

import torch

from .importance import _hook_points, run_with_input_hooks

__all__ = ["input_grams", "compensate_", "solve_compensation", "compensated_saliency", "greedy_saliency"]

log = logging.getLogger("whisper_edge")


@torch.no_grad()
def input_grams(model, batches) -> list[torch.Tensor]:
    """``H = Σ [x, 1][x, 1]ᵀ`` of every family's output projection input, in ``iter_families`` order (float64)."""
    points = list(_hook_points(model))
    grams: list[torch.Tensor | None] = [None] * len(points)

    def make_hook(k):
        def hook(_, args):
            x = args[0].detach().to(torch.float64).reshape(-1, args[0].shape[-1])
            z = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)], 1)
            g = (z.T @ z).cpu()
            grams[k] = g if grams[k] is None else grams[k] + g
        return hook

    run_with_input_hooks(model, [make_hook(k) for k in range(len(points))], batches)
    if any(g is None for g in grams):
        raise ValueError("no calibration batch reached every sublayer")
    return grams


def solve_compensation(gram: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, kept: torch.Tensor,
                       ridge: float) -> tuple[torch.Tensor, torch.Tensor]:
    """New (weight columns ``kept``, bias) of ``y = W x + b`` that best reproduce y from ``x[kept]``.

    ``gram``: (in+1, in+1) Gram matrix of [x, 1]; ``weight``: (out, in); returns (out, |kept|) and (out,).
    """
    n_in = weight.shape[1]
    W = weight.detach().to(torch.float64).cpu()
    b = bias.detach().to(torch.float64).cpu() if bias is not None else torch.zeros(W.shape[0], dtype=torch.float64)
    theta_full = torch.cat([W.T, b[None, :]], 0)  # (in+1, out)
    idx = torch.cat([kept.to(torch.long).cpu(), torch.tensor([n_in])])  # kept columns and the ones column
    G = gram[idx][:, idx].clone()
    rhs = gram[idx] @ theta_full  # Zᵀ [x, 1] Θ_full
    k = len(idx) - 1
    lam = ridge * float(G.diagonal()[:k].mean()) if k else 0.0
    if lam > 0:
        G[range(k), range(k)] += lam
        rhs[:k] += lam * theta_full[kept.to(torch.long).cpu()]
    G[k, k] += 1e-9 * max(1.0, float(G[k, k]))  # keeps the system regular when an input column is constant
    theta = torch.linalg.solve(G, rhs)
    return theta[:k].T.contiguous(), theta[k].contiguous()


@torch.no_grad()
def compensate_(model, keep: dict, grams: list[torch.Tensor], ridge: float = 1e-2) -> list[dict]:
    """Re-fit, in place, the output projection of every family that loses groups under ``keep``.

    Call before :func:`apply_surgery` (which then drops the removed columns). Returns, per re-fitted
    family, the relative output error on the calibration activations without and with compensation.
    """
    points = list(_hook_points(model))
    if len(points) != len(grams):
        raise ValueError("the Gram matrices were measured on a model with other sublayers")
    hd = model.config.d_model // model.config.encoder_attention_heads
    report = []
    for (side, i, kind, lin, heads), gram in zip(points, grams):
        groups = keep.get(side, [{}] * (i + 1))[i].get(kind)
        n_groups = heads or lin.in_features
        if groups is None or len(groups) == n_groups:
            continue
        g = torch.tensor(sorted(groups), dtype=torch.long)
        cols = (g[:, None] * hd + torch.arange(hd)[None, :]).reshape(-1) if heads else g
        if len(cols) == 0:
            # nothing kept: the sublayer becomes its bias; the best constant is the mean output
            full = torch.cat([lin.weight.detach().double().cpu().T, (lin.bias.detach().double().cpu() if lin.bias is not None
                              else torch.zeros(lin.out_features, dtype=torch.float64))[None]], 0)
            mean_in = gram[-1] / gram[-1, -1]  # E[[x, 1]]
            if lin.bias is not None:
                lin.bias.copy_((mean_in @ full).to(lin.bias.dtype))
            continue
        W_k, b = solve_compensation(gram, lin.weight, lin.bias, cols, ridge)
        err = _relative_errors(gram, lin, cols, W_k, b)
        lin.weight[:, cols] = W_k.to(lin.weight.dtype).to(lin.weight.device)
        if lin.bias is not None:
            lin.bias.copy_(b.to(lin.bias.dtype))
        report.append({"side": side, "layer": i, "kind": kind, "kept": len(groups), "groups": n_groups, **err})
    return report


def _relative_errors(gram, lin, cols, W_k, b) -> dict:
    """‖ŷ − y‖² / ‖y − ȳ‖² on the calibration activations, before (columns dropped) and after the re-fit."""
    n_in = lin.in_features
    W = lin.weight.detach().double().cpu()
    b0 = lin.bias.detach().double().cpu() if lin.bias is not None else torch.zeros(W.shape[0], dtype=torch.float64)
    full = torch.cat([W.T, b0[None]], 0)

    def sq_err(theta):  # Σ‖[x,1](θ − Θ_full)‖² = tr(Δᵀ H Δ)
        delta = theta - full
        return float(torch.einsum("io,ij,jo->", delta, gram, delta))

    dropped = full.clone()
    mask = torch.ones(n_in + 1, dtype=torch.bool)
    mask[cols] = False
    mask[n_in] = False
    dropped[mask] = 0
    refit = torch.zeros_like(full)
    refit[cols] = W_k.T
    refit[n_in] = b
    n = float(gram[-1, -1])
    mean_y = (gram[-1] / n) @ full
    total = float(torch.einsum("io,ij,jo->", full, gram, full)) - n * float(mean_y @ mean_y)
    return {"error_dropped": sq_err(dropped) / max(total, 1e-30), "error_compensated": sq_err(refit) / max(total, 1e-30)}


def greedy_saliency(gram: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, group_size: int, ridge: float,
                    chunk: int | None = None) -> torch.Tensor:
    """What removing each group costs once the others are re-fitted (the ``obs`` score), per group of ``group_size``
    consecutive input columns of ``y = W x + b``.

    The objective is :func:`solve_compensation`'s: ``Σ‖ŷ − y‖² + λ‖W'_K − W_K‖²`` over the calibration tokens. Groups
    are removed greedily, cheapest first, as in Optimal Brain Surgeon (Hassibi & Stork 1993; ZipLM, Kurtic et al. 2023,
    for structured groups): with the damped Gram matrix ``H_λ = H + λD`` and ``S = H_λ⁻¹`` over the columns still in,
    removing group g while the rest and the bias are re-fitted raises ``min δᵀH_λδ`` by ``Θ_gᵀ (S_gg)⁻¹ Θ_g`` (Θ the
    current re-fitted weights); minus the constant ``λ‖Θ⁰_g‖²`` that is the increase of the compensation's objective.
    A group's score is ``sqrt(increase / tokens)`` at its removal (an RMS output change per token, the activation
    score's unit), made non-decreasing along the order, so that any threshold removes a prefix of the greedy order.
    ``chunk`` groups leave at a time (default: about 128 steps per family; heads one at a time)."""
    n_in = weight.shape[1]
    n_groups = n_in // group_size
    W0 = weight.detach().to(torch.float64).cpu()
    b0 = bias.detach().to(torch.float64).cpu() if bias is not None else torch.zeros(W0.shape[0], dtype=torch.float64)
    theta = torch.cat([W0.T, b0[None, :]], 0)  # (in+1, out)
    H = gram.to(torch.float64).clone()
    scale = float(H.diagonal()[:n_in].mean())
    lam = ridge * scale
    # + a jitter: an input that is zero on every calibration token (a dead channel, an FFN whose groups SGL zeroed)
    # leaves H singular without a ridge; such a group then costs nothing to remove, as it should
    H[range(n_in), range(n_in)] += lam + 1e-9 * max(scale, 1e-12)
    H[n_in, n_in] += 1e-9 * max(1.0, float(H[n_in, n_in]))
    S = torch.linalg.inv(H)
    base = lam * W0.T.reshape(n_groups, group_size, -1).pow(2).sum((1, 2))  # λ‖Θ⁰_g‖²
    tokens = max(float(gram[-1, -1]), 1.0)
    chunk = chunk or (1 if group_size > 1 else max(1, n_groups // 128))

    def columns(groups):  # (groups, size): each group's input columns
        return groups[:, None] * group_size + torch.arange(group_size)[None, :]

    alive = torch.ones(n_groups, dtype=torch.bool)
    inc = torch.zeros(n_groups, dtype=torch.float64)
    order = []
    while alive.any():
        idx = torch.nonzero(alive).flatten()
        cols = columns(idx)
        if group_size == 1:
            c = cols[:, 0]
            delta = theta[c].pow(2).sum(1) / S[c, c].clamp_min(1e-300)
        else:
            Sgg = S[cols[:, :, None], cols[:, None, :]]  # (alive, size, size)
            tg = theta[cols]  # (alive, size, out)
            delta = torch.einsum("gio,gio->g", tg, torch.linalg.solve(Sgg, tg))
        cost = (delta - base[idx]).clamp_min(0.0)
        pick = torch.argsort(cost)[:chunk]
        gone = idx[pick]
        inc[gone] = cost[pick]
        order.append(gone)
        rm = columns(gone).reshape(-1)
        # re-fit the survivors: Θ ← Θ − S[:, R] S_RR⁻¹ Θ_R (the removed rows become exactly zero)
        # and S ← S − S[:, R] S_RR⁻¹ S[R, :], the inverse of H_λ over the survivors (block elimination)
        S_rows = S[rm]  # S is symmetric: S[:, R] = S[R, :]ᵀ (a row gather is contiguous)
        S_rr = S_rows[:, rm]
        theta.addmm_(S_rows.T, torch.linalg.solve(S_rr, theta[rm]), alpha=-1.0)
        S.addmm_(S_rows.T, torch.linalg.solve(S_rr, S_rows), alpha=-1.0)
        theta.index_fill_(0, rm, 0.0)
        S.index_fill_(0, rm, 0.0)
        S.index_fill_(1, rm, 0.0)
        alive[gone] = False
    order = torch.cat(order)
    score = torch.empty(n_groups, dtype=torch.float64)
    score[order] = torch.cummax(inc[order], 0).values  # non-decreasing along the greedy order
    return (score / tokens).sqrt().to(torch.float32)


@torch.no_grad()
def compensated_saliency(model, grams: list[torch.Tensor], ridge: float = 1e-2) -> list[torch.Tensor]:
    """:func:`greedy_saliency` of every family, in ``iter_families`` order (the ``obs`` score of ``AdaptiveOptions``)."""
    points = list(_hook_points(model))
    if len(points) != len(grams):
        raise ValueError("the Gram matrices were measured on a model with other sublayers")
    hd = model.config.d_model // model.config.encoder_attention_heads
    return [greedy_saliency(gram, lin.weight, lin.bias, hd if heads else 1, ridge) for (_, _, _, lin, heads), gram in zip(points, grams)]
