"""SmoothQuant for the encoder (Xiao et al. 2023, "SmoothQuant: Accurate and Efficient Post-Training Quantization
for Large Language Models"), folded into the weights before export so the graph gains no op.

Dynamic int8 quantizes every activation with one scale per tensor (ONNX Runtime's DynamicQuantizeLinear): a few
channels with large values (Whisper's encoder has them) set the scale and leave the others a handful of levels —
that is what moved the cross-attention keys by up to 7 and cost Hindi WER (docs/export.md). SmoothQuant divides
each input channel j of a linear layer by s_j and multiplies the weight's column j by s_j (exact in real
arithmetic), with s_j = max|X_j|^α / max|W_j|^(1−α): activations get flatter, weights (quantized per output
channel) absorb the range. Where the division lands:

* inputs of q/k/v_proj and of fc1 come from a LayerNorm: its γ and β are divided by s;
* out_proj's input is softmax(QKᵀ)·V, linear in V: v_proj's output rows (and bias) are divided by s, per head;
* the cross-attention keys/values read the encoder's final LayerNorm: it is divided by s, every decoder layer's
  encoder_attn.k_proj/v_proj columns multiplied;
* fc2's input comes out of GELU, which is not linear: left as it is.

α is the migration strength (0.5 in the paper; 0 = nothing moves). The statistics come from calibration clips.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["smooth_encoder"]


def _ranges(model, mels: list[np.ndarray]) -> dict:
    """max |x| per input channel of every smoothed site, over every frame of ``mels``."""
    enc = model.model.encoder
    ranges: dict = {}
    hooks = []

    def keep(name):
        def hook(_module, _inputs, output):
            m = output.detach().abs().flatten(0, -2).amax(0).float()
            ranges[name] = torch.maximum(ranges[name], m) if name in ranges else m
        return hook

    for i, layer in enumerate(enc.layers):
        hooks.append(layer.self_attn_layer_norm.register_forward_hook(keep(("attn_ln", i))))
        hooks.append(layer.final_layer_norm.register_forward_hook(keep(("ffn_ln", i))))
        if hasattr(layer.self_attn, "v_proj"):  # EmptyAttention: every head removed
            hooks.append(layer.self_attn.v_proj.register_forward_hook(keep(("v", i))))
    hooks.append(enc.layer_norm.register_forward_hook(keep(("out_ln", 0))))
    try:
        with torch.no_grad():
            for mel in mels:
                enc(torch.as_tensor(np.asarray(mel), dtype=torch.float32).reshape(1, *np.shape(mel)[-2:]))
    finally:
        for h in hooks:
            h.remove()
    return ranges


def _scale(x_max: torch.Tensor, weights: list[torch.Tensor], alpha: float) -> torch.Tensor:
    w_max = torch.stack([w.detach().abs().amax(0) for w in weights]).amax(0).float()
    s = x_max.clamp(min=1e-5).pow(alpha) / w_max.clamp(min=1e-5).pow(1 - alpha)
    return s.clamp(min=1e-5)


@torch.no_grad()
def _fold_ln(ln, linears, s):
    ln.weight.div_(s)
    if ln.bias is not None:
        ln.bias.div_(s)
    for lin in linears:
        lin.weight.mul_(s)


@torch.no_grad()
def smooth_encoder(model, mels: list[np.ndarray], alpha: float = 0.5) -> dict:
    """Smooth the encoder's int8 sites in place (fp32 outputs unchanged up to rounding); returns, per site kind,
    the mean over layers of the activation range's max/median ratio before and after (how spiky the channels are)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"SmoothQuant alpha must be within [0, 1], got {alpha}")
    if not mels:
        raise ValueError("SmoothQuant needs calibration clips (export --data …)")
    enc = model.model.encoder
    before = _ranges(model, mels)
    if alpha > 0:
        for i, layer in enumerate(enc.layers):
            a = layer.self_attn
            if hasattr(a, "v_proj"):
                lins = [a.q_proj, a.k_proj, a.v_proj]  # a layer whose heads were all removed has nothing to smooth here
                _fold_ln(layer.self_attn_layer_norm, lins, _scale(before[("attn_ln", i)], [m.weight for m in lins], alpha))
                s = _scale(before[("v", i)], [a.out_proj.weight], alpha)  # v_proj's outputs are out_proj's inputs
                a.v_proj.weight.div_(s[:, None])
                if a.v_proj.bias is not None:
                    a.v_proj.bias.div_(s)
                a.out_proj.weight.mul_(s)
            if layer.fc1.weight.shape[0]:
                _fold_ln(layer.final_layer_norm, [layer.fc1], _scale(before[("ffn_ln", i)], [layer.fc1.weight], alpha))
        cross = [m for layer in model.model.decoder.layers if hasattr(layer.encoder_attn, "k_proj")
                 for m in (layer.encoder_attn.k_proj, layer.encoder_attn.v_proj)]
        if cross:
            _fold_ln(enc.layer_norm, cross, _scale(before[("out_ln", 0)], [m.weight for m in cross], alpha))
    after = _ranges(model, mels)

    def spread(r):
        out = {}
        for (kind, _), v in r.items():
            if v.numel():
                out.setdefault(kind, []).append(float(v.max() / v.median().clamp(min=1e-8)))
        return {k: round(float(np.mean(v)), 2) for k, v in out.items()}

    return {"alpha": alpha, "clips": len(mels), "spread_before": spread(before), "spread_after": spread(after)}
