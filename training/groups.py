"""Removable groups: the units the exporter can cut out (an attention head, an FFN channel), defined once.

Every method that scores, penalizes, counts or removes groups walks them here (SGL's penalty and proximal step,
activation importance, the compensation, the adaptive rule, structured IMP, the parameter counts):

* attention head h of a sublayer: rows h·64…h·64+63 of q_proj, k_proj, v_proj (weights and the q/v biases) and
  the same columns of out_proj — :func:`head_group_size` = 4·64·d + 2·64 parameters;
* FFN channel j: row j of fc1, fc1.bias[j] and column j of fc2 — :func:`channel_group_size` = 2·d + 1.

A *family* is the groups of one kind in one sublayer (the heads of encoder layer 3's self-attention); families
come in one fixed order (:func:`iter_families`), which per-family lists (importance, SGL weights, Gram matrices)
follow.
"""

from __future__ import annotations

import math

import torch

from .architecture import EmptyAttention

__all__ = ["iter_families", "iter_groups", "group_norms", "group_scores", "grouped", "head_group_size",
           "channel_group_size"]


def head_group_size(d_model: int, head_dim: int) -> int:
    """Parameters of one attention head: q/k/v rows, out_proj columns, q and v bias entries."""
    return 4 * head_dim * d_model + 2 * head_dim


def channel_group_size(d_model: int) -> int:
    """Parameters of one FFN channel: an fc1 row, its bias entry and an fc2 column."""
    return 2 * d_model + 1


# A group family is stored as "parts": (tensor, layout) with layout "rows" (group g = a block of rows,
# tensor.view(G, -1)[g]) or "cols" (group g = a block of columns, tensor.view(out, G, -1)[:, g]).
# Every reduction and scaling below is one contiguous op per tensor, whatever the number of groups.

def _head_parts(att) -> list[tuple[torch.Tensor, str]]:
    parts = [(att.q_proj.weight, "rows"), (att.k_proj.weight, "rows"), (att.v_proj.weight, "rows"), (att.out_proj.weight, "cols")]
    parts += [(lin.bias, "rows") for lin in (att.q_proj, att.v_proj) if lin.bias is not None]
    return parts


def _ffn_parts(layer) -> list[tuple[torch.Tensor, str]]:
    return [(layer.fc1.weight, "rows"), (layer.fc1.bias, "rows"), (layer.fc2.weight, "cols")]


def grouped(w: torch.Tensor, layout: str, groups: int) -> torch.Tensor:
    return w.view(groups, -1) if layout == "rows" else w.view(w.shape[0], groups, -1)


def _reduce(x: torch.Tensor, layout: str) -> torch.Tensor:
    return x.sum(1) if layout == "rows" else x.sum((0, 2))


def iter_families(model):
    """Yield (side, layer index, kind, module) for every group family, in one fixed order: per layer the
    self-attention, the cross-attention (decoder) and the FFN; module is the attention sublayer or the
    encoder/decoder layer (for its FFN). kind ∈ heads (encoder) / self_heads / cross_heads / ffn."""
    m = model.model
    for side, layers in (("encoder", m.encoder.layers), ("decoder", m.decoder.layers)):
        for i, layer in enumerate(layers):
            for kind, att in (("self_heads", layer.self_attn), ("cross_heads", getattr(layer, "encoder_attn", None))):
                if att is not None and not isinstance(att, EmptyAttention):
                    yield side, i, ("heads" if side == "encoder" else kind), att
            if layer.fc1.out_features:
                yield side, i, "ffn", layer


def iter_groups(model):
    """Yield (side, layer index, kind, (parts, G)) for every group family (the order of :func:`iter_families`)."""
    for side, i, kind, mod in iter_families(model):
        if kind == "ffn":
            yield side, i, kind, (_ffn_parts(mod), mod.fc1.out_features)
        else:
            yield side, i, kind, (_head_parts(mod), mod.num_heads)


def group_norms(family) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Per-group L1 norm, squared L2 norm, and the group size p_g."""
    parts, groups = family
    l1 = l2 = None
    p = 0
    for w, layout in parts:
        g = grouped(w, layout, groups)
        a, s = _reduce(g.abs(), layout), _reduce(g.pow(2), layout)
        l1 = a if l1 is None else l1 + a
        l2 = s if l2 is None else l2 + s
        p += w.numel() // groups
    return l1, l2, p


@torch.no_grad()
def group_scores(model) -> list[dict]:
    """Per group family: side, layer, kind, L2 norms, RMS (norm/√p) and p. Used by pruning and inspect."""
    out = []
    for side, i, kind, family in iter_groups(model):
        _, l2sq, p = group_norms(family)
        norm = l2sq.sqrt()
        out.append({"side": side, "layer": i, "kind": kind, "norm": norm.cpu(), "rms": (norm / math.sqrt(p)).cpu(), "p": p})
    return out
