r"""Sparse Group LASSO over the units the exporter can remove.

For a set of groups G (each a set of weights W_g with p_g elements) the penalty is

.. math::

    \Omega(W) = \lambda_{enc} \sum_{g \in G_{enc}} \omega(W_g) + \lambda_{dec} \sum_{g \in G_{dec}} \omega(W_g),
    \qquad \omega(W_g) = \alpha \lVert W_g \rVert_1 + (1 - \alpha) \sqrt{p_g}\, \lVert W_g \rVert_2

Groups:

* attention head h of a sublayer: rows h·64…h·64+63 of q_proj, k_proj, v_proj (weights and the q/v
  biases) and the same columns of out_proj — p_g = 4·64·d + 2·64;
* FFN channel j: row j of fc1, fc1.bias[j] and column j of fc2 — p_g = 2·d + 1;
* optionally (``column_weight`` > 0), the paper's column groups: every input column of every q, k, v,
  fc1 weight matrix, weighted by ``column_weight`` (out_proj and fc2 columns are already head and
  channel groups).

Two ways to apply it:

* ``mode="loss"`` (the paper): :func:`sgl_penalty` is added to the training loss;
* ``mode="proximal"``: after each optimizer step :func:`sgl_prox_` applies the proximal operator of
  lr·Ω — element-wise soft-thresholding by lr·λ·α, then group shrinkage
  ``W_g ← max(0, 1 − lr·λ·(1−α)·√p_g / ‖W_g‖₂) · W_g`` — which yields exact zeros.

Adaptive SGL (``gamma`` > 0): every group's term is multiplied by a fixed weight w_g computed once
before training from the group's activation-aware importance (training/importance.py), so that the
shrinkage falls on the groups that contribute least within their own sublayer.

Both are vectorized: one contiguous reduction or scaling per weight tensor, no Python loop over
groups. The groups themselves (and their norms and scores) are defined in training/groups.py.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .architecture import EmptyAttention
from .groups import group_norms, grouped, iter_groups

__all__ = ["SGLConfig", "sgl_penalty", "sgl_prox_"]

_EPS = 1e-24


@dataclass(frozen=True)
class SGLConfig:
    lambda_enc: float = 1e-5
    lambda_dec: float = 1e-5
    alpha: float = 0.5
    mode: str = "proximal"  # "loss" | "proximal"
    column_weight: float = 0.0
    # Adaptive SGL (training/importance.py): each group's term is weighted by
    # w_g = min(w_max, (median importance of its sublayer / its importance)^gamma); 0 = plain SGL.
    gamma: float = 0.0
    w_max: float = 20.0
    calib_batches: int = 8  # training batches that measure the importance (once, before step 1)
    # Gentle SGL: groups whose importance is at or above this quantile of their sublayer get weight 0 (not
    # penalized at all), so the fine-tune chooses among the candidates without shrinking what stays. 1 = off.
    protect_quantile: float = 1.0

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"sgl.alpha must be within [0, 1], got {self.alpha}")
        for k in ("lambda_enc", "lambda_dec", "column_weight"):
            if getattr(self, k) < 0:
                raise ValueError(f"sgl.{k} must be ≥ 0, got {getattr(self, k)}")
        if not 0.0 < self.protect_quantile <= 1.0:
            raise ValueError(f"sgl.protect_quantile must be within (0, 1], got {self.protect_quantile}")
        if self.gamma < 0 or self.w_max <= 0 or self.calib_batches < 1:
            raise ValueError("sgl.gamma must be ≥ 0, sgl.w_max > 0 and sgl.calib_batches ≥ 1")
        if self.mode not in ("loss", "proximal"):
            raise ValueError(f"sgl.mode must be 'loss' or 'proximal', got {self.mode!r}")


def _columns(model):
    m = model.model
    for side, layers in (("encoder", m.encoder.layers), ("decoder", m.decoder.layers)):
        for layer in layers:
            mats = [layer.fc1.weight] if layer.fc1.out_features else []
            for att in (layer.self_attn, getattr(layer, "encoder_attn", None)):
                if att is not None and not isinstance(att, EmptyAttention):
                    mats += [att.q_proj.weight, att.k_proj.weight, att.v_proj.weight]
            for w in mats:
                yield side, w


def sgl_penalty(model, cfg: SGLConfig, weights: list[torch.Tensor] | None = None) -> torch.Tensor:
    """The SGL penalty Ω(W) (a differentiable scalar); ``weights``: per-group weights, one tensor per
    family in :func:`iter_groups` order (adaptive SGL), None = all ones."""
    total = None
    lam = {"encoder": cfg.lambda_enc, "decoder": cfg.lambda_dec}
    for k, (side, _, _, family) in enumerate(iter_groups(model)):
        if not lam[side]:
            continue
        l1, l2sq, p = group_norms(family)
        per_group = cfg.alpha * l1 + (1 - cfg.alpha) * math.sqrt(p) * l2sq.clamp_min(_EPS).sqrt()
        if weights is not None:
            per_group = per_group * weights[k].to(per_group)
        term = lam[side] * per_group.sum()
        total = term if total is None else total + term
    if cfg.column_weight:
        for side, w in _columns(model):
            if lam[side]:
                l1, l2 = w.abs().sum(0), w.pow(2).sum(0).clamp_min(_EPS).sqrt()
                term = cfg.column_weight * lam[side] * (cfg.alpha * l1.sum() + (1 - cfg.alpha) * math.sqrt(w.shape[0]) * l2.sum())
                total = term if total is None else total + term
    if total is None:
        return next(model.parameters()).new_zeros(())
    return total


@torch.no_grad()
def sgl_prox_(model, cfg: SGLConfig, lr: float, weights: list[torch.Tensor] | None = None) -> None:
    """Apply the proximal operator of lr·Ω in place (exact zeros for whole groups); ``weights`` as in
    :func:`sgl_penalty` (the thresholds of group g are scaled by w_g)."""
    lam = {"encoder": cfg.lambda_enc, "decoder": cfg.lambda_dec}
    for k, (side, _, _, family) in enumerate(iter_groups(model)):
        t = lr * lam[side]
        if not t:
            continue
        parts, groups = family
        wg = weights[k].to(parts[0][0]) if weights is not None else None
        if cfg.alpha:
            for w, layout in parts:  # element-wise soft-thresholding, one fused kernel per tensor
                if wg is None:
                    w.copy_(torch.nn.functional.softshrink(w, t * cfg.alpha))
                else:
                    g = grouped(w, layout, groups)
                    thr = t * cfg.alpha * (wg[:, None] if layout == "rows" else wg[None, :, None])
                    g.copy_(g.sign() * (g.abs() - thr).clamp_min(0))
        _, l2sq, p = group_norms(family)
        shrink = t * (1 - cfg.alpha) * math.sqrt(p) * (wg if wg is not None else 1.0)
        scale = (1 - shrink / l2sq.clamp_min(_EPS).sqrt()).clamp_min(0)
        for w, layout in parts:
            g = grouped(w, layout, groups)
            g.mul_(scale[:, None] if layout == "rows" else scale[None, :, None])
    if cfg.column_weight:
        for side, w in _columns(model):
            t = lr * lam[side] * cfg.column_weight
            if not t:
                continue
            if cfg.alpha:
                w.copy_(torch.nn.functional.softshrink(w, t * cfg.alpha))
            n = w.pow(2).sum(0).clamp_min(_EPS).sqrt()
            w.mul_((1 - t * (1 - cfg.alpha) * math.sqrt(w.shape[0]) / n).clamp_min(0))
