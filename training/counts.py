"""Parameter, FLOP and weight-memory counts of a (possibly pruned) Whisper.

FLOPs count a multiply-add as 2, over matrix products and convolutions only (what
``torch.utils.flop_counter`` counts; LayerNorm, softmax, GELU and bias adds are left out, a few
per cent). The encoder count is for one window of the model's audio context; the decoder count is
for one token at a given self-attention context length (the cross-attention keys and values are
computed once per window and counted separately as ``cross_kv``).
"""

from __future__ import annotations

import torch

from .architecture import Architecture, architecture_of

__all__ = ["flops", "param_counts", "model_counts", "format_counts"]


def flops(arch: Architecture, *, vocab: int, n_mels: int = 80, token_ctx: int = 64) -> dict:
    """Analytic FLOPs from the record alone (exact for matrix products and convolutions)."""
    d, hd, A = arch.d_model, arch.head_dim, arch.audio_ctx
    conv = 2 * (2 * A) * d * n_mels * 3 + 2 * A * d * d * 3
    enc_layers = []
    for l in arch.encoder:
        w = l["heads"] * hd
        att = 2 * A * d * w * 3 + 2 * A * w * d + 2 * 2 * A * A * w  # q,k,v + out + scores + weighted sum
        ffn = 2 * 2 * A * d * l["ffn"]
        enc_layers.append(att + ffn)
    cross_kv = sum(2 * 2 * A * d * l["cross_heads"] * hd for l in arch.decoder)
    dec_layers = []
    for l in arch.decoder:
        ws, wc = l["self_heads"] * hd, l["cross_heads"] * hd
        self_att = 2 * d * ws * 3 + 2 * ws * d + 2 * 2 * token_ctx * ws
        cross_att = 2 * d * wc + 2 * wc * d + 2 * 2 * A * wc
        dec_layers.append(self_att + cross_att + 2 * 2 * d * l["ffn"])
    logits = 2 * d * vocab
    return {
        "encoder": conv + sum(enc_layers),
        "encoder_layers": enc_layers,
        "cross_kv": cross_kv,
        "decoder_per_token": sum(dec_layers) + logits,
        "decoder_layers": dec_layers,
        "logits": logits,
        "token_ctx": token_ctx,
    }


@torch.no_grad()
def param_counts(model) -> dict:
    """total: parameters of the model as built (tied embeddings once); nonzero; removable: those in
    heads and FFN channels that are entirely zero and could be cut out physically."""
    from .groups import group_norms, iter_groups

    seen, total, nonzero = set(), 0, 0
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.numel()
        nonzero += int(torch.count_nonzero(p))
    removable = 0
    for _, _, _, views in iter_groups(model):
        _, l2sq, p = group_norms(views)
        removable += int((l2sq == 0).sum()) * p
    return {"total": total, "nonzero": nonzero, "removable": removable}


def attention_ffn_params(arch: Architecture) -> int:
    """Parameters in the removable groups: every head's q/k/v rows, out_proj columns and q/v biases, every FFN
    channel's fc1 row, bias and fc2 column."""
    from .groups import channel_group_size, head_group_size

    head, channel = head_group_size(arch.d_model, arch.head_dim), channel_group_size(arch.d_model)
    return sum(sum(layer[k] for k in ("heads", "self_heads", "cross_heads") if k in layer) * head + layer["ffn"] * channel
               for layer in arch.encoder + arch.decoder)


def model_counts(model, *, token_ctx: int = 64) -> dict:
    arch = architecture_of(model)
    params = param_counts(model)
    bytes_per = next(model.parameters()).element_size()
    out = {
        "architecture": arch.to_dict(),
        "params": params,
        "flops": flops(arch, vocab=model.config.vocab_size, n_mels=model.config.num_mel_bins, token_ctx=token_ctx),
        "weight_bytes": params["total"] * bytes_per,
        "weight_bytes_dtype": str(next(model.parameters()).dtype).replace("torch.", ""),
    }
    dense_arch = Architecture.dense(model.config)
    removed = attention_ffn_params(dense_arch) - attention_ffn_params(arch)
    params["dense_total"] = params["total"] + removed
    params["removed"] = removed
    dense_flops = flops(dense_arch, vocab=model.config.vocab_size, n_mels=model.config.num_mel_bins, token_ctx=token_ctx)
    out["dense_flops"] = {k: dense_flops[k] for k in ("encoder", "cross_kv", "decoder_per_token")}
    return out


def _pct_text(a: float, b: float) -> str:
    return f"{100 * (a - b) / b:+.1f} %" if b else "n/a"


def format_counts(c: dict) -> str:
    p, f, df = c["params"], c["flops"], c["dense_flops"]
    arch = Architecture.from_dict(c["architecture"])
    dense_total = p["dense_total"]
    lines = [
        "| quantity | value | vs dense |", "|---|---:|---:|",
        f"| parameters (as built) | {p['total']:,} | {_pct_text(p['total'], dense_total)} |",
        f"| physically removed | {p['removed']:,} | |",
        f"| non-zero parameters | {p['nonzero']:,} | {_pct_text(p['nonzero'], dense_total)} |",
        f"| in all-zero groups (removable) | {p['removable']:,} | |",
        f"| weight memory ({c['weight_bytes_dtype']}) | {c['weight_bytes'] / 2**20:.1f} MiB | |",
        f"| encoder GFLOPs / window ({arch.audio_ctx} positions) | {f['encoder'] / 1e9:.3f} | {_pct_text(f['encoder'], df['encoder'])} |",
        f"| cross-attention K/V GFLOPs / window | {f['cross_kv'] / 1e9:.3f} | {_pct_text(f['cross_kv'], df['cross_kv'])} |",
        f"| decoder MFLOPs / token (context {f['token_ctx']}) | {f['decoder_per_token'] / 1e6:.2f} | {_pct_text(f['decoder_per_token'], df['decoder_per_token'])} |",
        "",
        "| layer | heads (self+cross) | FFN width |", "|---|---:|---:|",
    ]
    for i, l in enumerate(arch.encoder):
        lines.append(f"| encoder {i} | {l['heads']} | {l['ffn']} |")
    for i, l in enumerate(arch.decoder):
        lines.append(f"| decoder {i} | {l['self_heads']}+{l['cross_heads']} | {l['ffn']} |")
    return "\n".join(lines)
