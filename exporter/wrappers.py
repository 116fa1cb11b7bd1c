"""Export wrappers: plain PyTorch modules over a (possibly pruned) Whisper, shaped for ONNX.

optimum assumes one head count for every layer; these wrappers read each layer's own width, skip
sublayers with nothing left (their output is the out_proj/fc2 bias), and name their tensors as in
DESIGN.md:

encoder  ``mel`` (B, n_mels, 2·A) → ``cross_k_{i}``, ``cross_v_{i}`` (B, H_i, A, 64) for every decoder
         layer i with cross-attention heads; A is free up to the model's audio context (a shorter window
         takes the first A positional embeddings: the dynamic audio context)
decoder  ``tokens`` (B, T) int64, ``offset`` () int64 (tokens already in the cache),
         ``self_k_{i}``, ``self_v_{i}`` (B, H_i, P, 64) and the cross K/V
         → ``logits`` (B, T, V), ``new_self_k_{i}``, ``new_self_v_{i}`` (B, H_i, P+T, 64)

Layers without self-attention heads have no cache tensors; layers without cross-attention heads
have no cross tensors. The runtime reads which exist from the manifest's architecture record.
"""

from __future__ import annotations

import torch
from torch import nn

from ..training.architecture import EmptyAttention, architecture_of

__all__ = ["EncoderWrapper", "DecoderWrapper", "io_names"]


def _has(att) -> bool:
    return att is not None and not isinstance(att, EmptyAttention)


def _split(x: torch.Tensor, heads: int, hd: int) -> torch.Tensor:
    b, t, _ = x.shape
    return x.view(b, t, heads, hd).transpose(1, 2)


def _qkv(att, h: torch.Tensor, hd: int):
    """Query (pre-scaled, as in Whisper), key and value of ``h``, split into heads."""
    n = att.num_heads
    return (_split(att.q_proj(h) * (hd ** -0.5), n, hd), _split(att.k_proj(h), n, hd), _split(att.v_proj(h), n, hd))


def _ffn(layer, h: torch.Tensor) -> torch.Tensor:
    if layer.fc1.out_features == 0:
        return layer.fc2.bias
    return layer.fc2(nn.functional.gelu(layer.fc1(layer.final_layer_norm(h))))


def _attend(q, k, v, mask=None):
    w = torch.matmul(q, k.transpose(-1, -2))  # q is pre-scaled, as in Whisper
    if mask is not None:
        w = w + mask
    return torch.matmul(torch.softmax(w, dim=-1), v)


def _merge(x: torch.Tensor) -> torch.Tensor:
    b, h, t, hd = x.shape
    return x.transpose(1, 2).reshape(b, t, h * hd)


class EncoderWrapper(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.arch = architecture_of(model)
        self.hd = self.arch.head_dim

    def forward(self, mel: torch.Tensor):
        enc = self.model.model.encoder
        x = nn.functional.gelu(enc.conv1(mel))
        x = nn.functional.gelu(enc.conv2(x)).permute(0, 2, 1)
        x = x + enc.embed_positions.weight[: x.shape[1]]
        for layer in enc.layers:
            att = layer.self_attn
            if _has(att):
                h = layer.self_attn_layer_norm(x)
                x = x + att.out_proj(_merge(_attend(*_qkv(att, h, self.hd))))
            else:
                x = x + att.bias
            x = x + _ffn(layer, x)
        x = enc.layer_norm(x)
        outs = []
        for layer in self.model.model.decoder.layers:
            att = layer.encoder_attn
            if _has(att):
                outs.append(_split(att.k_proj(x), att.num_heads, self.hd))
                outs.append(_split(att.v_proj(x), att.num_heads, self.hd))
        return tuple(outs)


class DecoderWrapper(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model
        self.arch = architecture_of(model)
        self.hd = self.arch.head_dim
        layers = model.model.decoder.layers
        self.self_idx = [i for i, l in enumerate(layers) if _has(l.self_attn)]
        self.cross_idx = [i for i, l in enumerate(layers) if _has(l.encoder_attn)]
        # One (d_model, vocab) table serves both the token lookup (Gather on axis 1) and the output
        # projection, so the exported graph stores the tied embedding once.
        self.table = nn.Parameter(model.model.decoder.embed_tokens.weight.detach().t().contiguous(), requires_grad=False)

    def forward(self, tokens: torch.Tensor, offset: torch.Tensor, *caches: torch.Tensor):
        dec = self.model.model.decoder
        ns, nc = len(self.self_idx), len(self.cross_idx)
        self_kv = {i: (caches[2 * j], caches[2 * j + 1]) for j, i in enumerate(self.self_idx)}
        cross_kv = {i: (caches[2 * ns + 2 * j], caches[2 * ns + 2 * j + 1]) for j, i in enumerate(self.cross_idx)}
        assert len(caches) == 2 * (ns + nc)
        t = tokens.shape[1]
        pos = offset + torch.arange(t, device=tokens.device)
        b = tokens.shape[0]
        x = self.table.index_select(1, tokens.reshape(-1)).t().reshape(b, t, -1) + dec.embed_positions.weight[pos]
        # causal mask over the new tokens (every past token is visible): new token j sees new tokens ≤ j
        new = torch.arange(t, device=tokens.device)
        mask = torch.where(new[None, :] <= new[:, None], 0.0, float("-inf"))
        new_caches = []
        for i, layer in enumerate(dec.layers):
            att = layer.self_attn
            if _has(att):
                h = layer.self_attn_layer_norm(x)
                q, k_new, v_new = _qkv(att, h, self.hd)
                k = torch.cat([self_kv[i][0], k_new], dim=2)
                v = torch.cat([self_kv[i][1], v_new], dim=2)
                new_caches += [k, v]
                full_mask = torch.cat([torch.zeros(t, k.shape[2] - t, dtype=mask.dtype, device=mask.device), mask], dim=1)
                x = x + att.out_proj(_merge(_attend(q, k, v, full_mask)))
            else:
                x = x + att.bias
            catt = layer.encoder_attn
            if _has(catt):
                h = layer.encoder_attn_layer_norm(x)
                q = _split(catt.q_proj(h) * (self.hd ** -0.5), catt.num_heads, self.hd)
                x = x + catt.out_proj(_merge(_attend(q, *cross_kv[i])))
            else:
                x = x + catt.bias
            x = x + _ffn(layer, x)
        x = dec.layer_norm(x)
        logits = torch.matmul(x, self.table)
        return (logits, *new_caches)


def io_names(model) -> dict:
    """Input/output names of both graphs and their dynamic axes."""
    layers = model.model.decoder.layers
    self_idx = [i for i, l in enumerate(layers) if _has(l.self_attn)]
    cross_idx = [i for i, l in enumerate(layers) if _has(l.encoder_attn)]
    cross = [n for i in cross_idx for n in (f"cross_k_{i}", f"cross_v_{i}")]
    self_in = [n for i in self_idx for n in (f"self_k_{i}", f"self_v_{i}")]
    self_out = [f"new_{n}" for n in self_in]
    return {
        "encoder_inputs": ["mel"], "encoder_outputs": cross,
        "decoder_inputs": ["tokens", "offset", *self_in, *cross], "decoder_outputs": ["logits", *self_out],
        # the frame axis is free: a window shorter than audio_ctx (the dynamic audio context) runs the same graphs
        "dynamic_axes_encoder": {"mel": {0: "batch", 2: "frames"}} | {n: {0: "batch", 2: "positions"} for n in cross},
        "dynamic_axes_decoder": {"tokens": {0: "batch", 1: "new_tokens"}, "logits": {0: "batch", 1: "new_tokens"}}
        | {n: {0: "batch", 2: "past"} for n in self_in} | {n: {0: "batch", 2: "total"} for n in self_out}
        | {n: {0: "batch", 2: "positions"} for n in cross},
        "self_layers": self_idx, "cross_layers": cross_idx,
    }
