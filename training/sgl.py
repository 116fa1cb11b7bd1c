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

Both are vectorized per sublayer (a head's four slices are reshaped views, no Python loop over
groups). :func:`group_scores` returns per-group norms for pruning.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .architecture import EmptyAttention

__all__ = ["SGLConfig", "sgl_penalty", "sgl_prox_", "group_scores", "iter_groups"]

_EPS = 1e-24


@dataclass(frozen=True)
class SGLConfig:
    lambda_enc: float = 1e-5
    lambda_dec: float = 1e-5
    alpha: float = 0.5
    mode: str = "proximal"  # "loss" | "proximal"
    column_weight: float = 0.0

    def __post_init__(self):
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"sgl.alpha must be within [0, 1], got {self.alpha}")
        for k in ("lambda_enc", "lambda_dec", "column_weight"):
            if getattr(self, k) < 0:
                raise ValueError(f"sgl.{k} must be ≥ 0, got {getattr(self, k)}")
        if self.mode not in ("loss", "proximal"):
            raise ValueError(f"sgl.mode must be 'loss' or 'proximal', got {self.mode!r}")


def _head_views(att, hd: int) -> list[tuple[torch.Tensor, tuple[int, ...]]]:
    """(tensor view shaped (H, ...) or (..., H, ...), reduce dims) for every slice of a head group."""
    h = att.num_heads
    d = att.q_proj.in_features
    views = [(att.q_proj.weight.view(h, hd, d), (1, 2)), (att.k_proj.weight.view(h, hd, d), (1, 2)),
             (att.v_proj.weight.view(h, hd, d), (1, 2)), (att.out_proj.weight.view(d, h, hd).transpose(0, 1), (1, 2))]
    for lin in (att.q_proj, att.v_proj):
        if lin.bias is not None:
            views.append((lin.bias.view(h, hd), (1,)))
    return views


def _ffn_views(layer) -> list[tuple[torch.Tensor, tuple[int, ...]]]:
    return [(layer.fc1.weight, (1,)), (layer.fc1.bias.unsqueeze(1), (1,)), (layer.fc2.weight.t(), (1,))]


def iter_groups(model):
    """Yield (side, layer index, kind, views) for every group family: kind ∈ self_heads, cross_heads, ffn."""
    hd = model.config.d_model // model.config.encoder_attention_heads
    m = model.model
    for side, layers in (("encoder", m.encoder.layers), ("decoder", m.decoder.layers)):
        for i, layer in enumerate(layers):
            for kind, att in (("self_heads", layer.self_attn), ("cross_heads", getattr(layer, "encoder_attn", None))):
                if att is not None and not isinstance(att, EmptyAttention):
                    yield side, i, ("heads" if side == "encoder" else kind), _head_views(att, hd)
            if layer.fc1.out_features:
                yield side, i, "ffn", _ffn_views(layer)


def _group_l1_l2sq(views) -> tuple[torch.Tensor, torch.Tensor, int]:
    l1 = l2 = None
    p = 0
    for v, dims in views:
        a = v.abs().sum(dims)
        s = v.pow(2).sum(dims)
        l1 = a if l1 is None else l1 + a
        l2 = s if l2 is None else l2 + s
        p += math.prod(v.shape[d] for d in dims)
    return l1, l2, p


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


def sgl_penalty(model, cfg: SGLConfig) -> torch.Tensor:
    """The SGL penalty Ω(W) (a differentiable scalar)."""
    total = None
    lam = {"encoder": cfg.lambda_enc, "decoder": cfg.lambda_dec}
    for side, _, _, views in iter_groups(model):
        if not lam[side]:
            continue
        l1, l2sq, p = _group_l1_l2sq(views)
        term = lam[side] * (cfg.alpha * l1.sum() + (1 - cfg.alpha) * math.sqrt(p) * l2sq.clamp_min(_EPS).sqrt().sum())
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
def sgl_prox_(model, cfg: SGLConfig, lr: float) -> None:
    """Apply the proximal operator of lr·Ω in place (exact zeros for whole groups)."""
    lam = {"encoder": cfg.lambda_enc, "decoder": cfg.lambda_dec}
    for side, _, _, views in iter_groups(model):
        t = lr * lam[side]
        if not t:
            continue
        if cfg.alpha:
            for v, _ in views:
                v.copy_(torch.sign(v) * (v.abs() - t * cfg.alpha).clamp_min(0))
        _, l2sq, p = _group_l1_l2sq(views)
        scale = (1 - t * (1 - cfg.alpha) * math.sqrt(p) / l2sq.clamp_min(_EPS).sqrt()).clamp_min(0)
        for v, dims in views:
            v.mul_(scale.view(scale.shape + (1,) * len(dims)))
    if cfg.column_weight:
        for side, w in _columns(model):
            t = lr * lam[side] * cfg.column_weight
            if not t:
                continue
            if cfg.alpha:
                w.copy_(torch.sign(w) * (w.abs() - t * cfg.alpha).clamp_min(0))
            n = w.pow(2).sum(0).clamp_min(_EPS).sqrt()
            w.mul_((1 - t * (1 - cfg.alpha) * math.sqrt(w.shape[0]) / n).clamp_min(0))


@torch.no_grad()
def group_scores(model) -> list[dict]:
    """Per group family: side, layer, kind, L2 norms, RMS (norm/√p) and p. Used by pruning and inspect."""
    out = []
    for side, i, kind, views in iter_groups(model):
        _, l2sq, p = _group_l1_l2sq([(v.float(), d) for v, d in views])
        norm = l2sq.sqrt()
        out.append({"side": side, "layer": i, "kind": kind, "norm": norm.cpu(), "rms": (norm / math.sqrt(p)).cpu(), "p": p})
    return out
