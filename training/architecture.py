"""The per-layer architecture record, model surgery and loading of pruned checkpoints.

A record describes the shape of every layer once pruning has made layers differ::

    {"format": 1, "head_dim": 64, "audio_ctx": 1500,
     "encoder": [{"heads": 8, "ffn": 2048}, ...],
     "decoder": [{"self_heads": 8, "cross_heads": 8, "ffn": 2048}, ...]}

A head is a ``head_dim``-wide slice: rows of q/k/v (and their biases) and columns of out_proj. An
FFN channel j is row j of fc1 (and its bias) and column j of fc2. A sublayer with no heads left
becomes :class:`EmptyAttention` (the residual plus the out_proj bias); an FFN with no channels
left keeps zero-width Linear layers, which PyTorch runs as "bias only".

The record lives in ``config.json`` under ``whisper_edge.architecture``, so a checkpoint stays a
plain ``save_pretrained`` folder. :func:`load_checkpoint` builds the dense model from the config,
narrows it to the record, then loads the weights, and says which layer disagrees when the
weights do not fit the record.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import torch
from torch import nn

from ..runtime.record import Architecture, ArchitectureError

__all__ = [
    "Architecture", "ArchitectureError", "EmptyAttention", "architecture_of", "apply_surgery",
    "shape_model", "load_checkpoint", "save_checkpoint", "trim_audio_context", "mask_model",
    "resolve_model_dir",
]

log = logging.getLogger("whisper_edge")


class EmptyAttention(nn.Module):
    """An attention sublayer with every head removed: its output is the out_proj bias.

    In a decoder self-attention it still appends zero-head keys/values to the cache, so that the
    cache's sequence length (which positions the next token) stays right.
    """

    def __init__(self, embed_dim: int, head_dim: int, bias: torch.Tensor | None, layer_idx: int | None,
                 is_decoder: bool):
        super().__init__()
        self.embed_dim, self.head_dim, self.num_heads = embed_dim, head_dim, 0
        self.layer_idx, self.is_decoder = layer_idx, is_decoder
        self.bias = nn.Parameter(bias.detach().clone() if bias is not None else torch.zeros(embed_dim))

    def forward(self, hidden_states, key_value_states=None, past_key_values=None, cache_position=None, **kwargs):
        bsz, tgt_len = hidden_states.shape[:2]
        if past_key_values is not None and key_value_states is None and self.is_decoder:
            from transformers.cache_utils import EncoderDecoderCache

            cache = past_key_values.self_attention_cache if isinstance(past_key_values, EncoderDecoderCache) else past_key_values
            empty = hidden_states.new_zeros(bsz, 0, tgt_len, self.head_dim)
            cache.update(empty, empty, self.layer_idx, {"cache_position": cache_position})
        return self.bias.to(hidden_states.dtype).expand(bsz, tgt_len, self.embed_dim), None


def _attn(layer, kind: str):
    return {"self": layer.self_attn, "cross": getattr(layer, "encoder_attn", None)}[kind]


def _sublayers(model):
    """Yield (side, index, layer) for every encoder and decoder layer."""
    m = model.model
    for i, layer in enumerate(m.encoder.layers):
        yield "encoder", i, layer
    for i, layer in enumerate(m.decoder.layers):
        yield "decoder", i, layer


def _heads(att) -> int:
    return 0 if isinstance(att, EmptyAttention) else att.num_heads


def architecture_of(model) -> Architecture:
    """The record read off the modules themselves."""
    cfg = model.config
    arch = Architecture.dense(cfg)
    for side, i, layer in _sublayers(model):
        rec = getattr(arch, side)[i]
        if side == "encoder":
            rec["heads"] = _heads(layer.self_attn)
        else:
            rec["self_heads"], rec["cross_heads"] = _heads(layer.self_attn), _heads(layer.encoder_attn)
        rec["ffn"] = layer.fc1.out_features
    arch.audio_ctx = cfg.max_source_positions
    return arch


def _narrow_linear(lin: nn.Linear, rows: torch.Tensor | None = None, cols: torch.Tensor | None = None) -> nn.Linear:
    w = lin.weight.detach()
    if rows is not None:
        w = w.index_select(0, rows)
    if cols is not None:
        w = w.index_select(1, cols)
    with warnings.catch_warnings():  # a zero-width layer (everything pruned) is intended
        warnings.filterwarnings("ignore", message="Initializing zero-element tensors")
        new = nn.Linear(w.shape[1], w.shape[0], bias=lin.bias is not None, device=w.device, dtype=w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if lin.bias is not None:
            new.bias.copy_(lin.bias.detach() if rows is None else lin.bias.detach().index_select(0, rows))
    return new


def _head_rows(heads: torch.Tensor, head_dim: int) -> torch.Tensor:
    return (heads[:, None] * head_dim + torch.arange(head_dim, device=heads.device)[None, :]).reshape(-1)


def _keep_heads(layer, name: str, heads: list[int], head_dim: int, side: str, idx: int) -> None:
    att = getattr(layer, name)
    n = _heads(att)
    if any(h < 0 or h >= n for h in heads) or len(set(heads)) != len(heads):
        raise ArchitectureError(f"{side} layer {idx} {name}: head indices {heads} are not distinct indices below {n}")
    if isinstance(att, EmptyAttention):
        return  # nothing left to narrow
    if not heads:
        setattr(layer, name, EmptyAttention(att.embed_dim, head_dim, att.out_proj.bias, att.layer_idx, att.is_decoder))
        return
    rows = _head_rows(torch.tensor(sorted(heads), device=att.q_proj.weight.device), head_dim)
    att.q_proj = _narrow_linear(att.q_proj, rows=rows)
    att.k_proj = _narrow_linear(att.k_proj, rows=rows)
    att.v_proj = _narrow_linear(att.v_proj, rows=rows)
    att.out_proj = _narrow_linear(att.out_proj, cols=rows)
    att.num_heads, att.head_dim = len(heads), head_dim


def _keep_channels(layer, channels: list[int], side: str, idx: int) -> None:
    n = layer.fc1.out_features
    if any(c < 0 or c >= n for c in channels):
        raise ArchitectureError(f"{side} layer {idx} ffn: channel indices must be below {n}")
    idx_t = torch.tensor(sorted(set(channels)), dtype=torch.long, device=layer.fc1.weight.device)
    layer.fc1 = _narrow_linear(layer.fc1, rows=idx_t)
    layer.fc2 = _narrow_linear(layer.fc2, cols=idx_t)


def _layer_specs(model, keep: dict):
    """(side, index, layer, spec, ((record key, attention attribute), …)) for every layer, spec from ``keep``."""
    for side, i, layer in _sublayers(model):
        layers = keep.get(side) or []
        spec = layers[i] if i < len(layers) else {}
        names = (("heads", "self_attn"),) if side == "encoder" else (("self_heads", "self_attn"), ("cross_heads", "encoder_attn"))
        yield side, i, layer, spec, names


def apply_surgery(model, keep: dict) -> Architecture:
    """Physically remove heads and channels. ``keep`` mirrors the record with index lists::

        {"encoder": [{"heads": [0, 2, ...], "ffn": [...]}, ...],
         "decoder": [{"self_heads": [...], "cross_heads": [...], "ffn": [...]}, ...]}

    A missing key keeps everything. Returns the new record, which is also written to the config.
    """
    hd = model.config.d_model // model.config.encoder_attention_heads
    for side, i, layer, spec, names in _layer_specs(model, keep):
        for key, attr in names:
            if key in spec:
                _keep_heads(layer, attr, list(spec[key]), hd, side, i)
        if "ffn" in spec:
            _keep_channels(layer, list(spec["ffn"]), side, i)
    arch = architecture_of(model)
    _write_record(model.config, arch)
    return arch


def _write_record(config, arch: Architecture) -> None:
    meta = dict(getattr(config, "whisper_edge", None) or {})
    meta["architecture"] = arch.to_dict()
    config.whisper_edge = meta


def shape_model(model, arch: Architecture) -> None:
    """Narrow a freshly built dense model to the record's counts (weights are loaded afterwards)."""
    keep = {
        "encoder": [{"heads": list(range(l["heads"])), "ffn": list(range(l["ffn"]))} for l in arch.encoder],
        "decoder": [{"self_heads": list(range(l["self_heads"])), "cross_heads": list(range(l["cross_heads"])),
                     "ffn": list(range(l["ffn"]))} for l in arch.decoder],
    }
    dense = Architecture.dense(model.config)
    for side in ("encoder", "decoder"):
        for i, (got, full) in enumerate(zip(getattr(arch, side), getattr(dense, side))):
            for k, v in got.items():
                if v > full[k]:
                    raise ArchitectureError(f"{side} layer {i}: the record says {k}={v}, more than the dense model's {full[k]}")
    apply_surgery(model, keep)


def trim_audio_context(model, positions: int) -> None:
    """Shorten the encoder to ``positions`` (1500 = 30 s; 500 = 10 s), slicing the positional table."""
    cfg = model.config
    if not 1 <= positions <= cfg.max_source_positions:
        raise ValueError(f"audio_ctx must be between 1 and {cfg.max_source_positions}, got {positions}")
    if positions == cfg.max_source_positions:
        return
    enc = model.model.encoder
    table = enc.embed_positions.weight.detach()[:positions].clone()
    enc.embed_positions = nn.Embedding(positions, cfg.d_model, device=table.device, dtype=table.dtype)
    enc.embed_positions.weight.data.copy_(table)
    enc.embed_positions.requires_grad_(False)
    enc.max_source_positions = positions
    cfg.max_source_positions = positions
    if (getattr(cfg, "whisper_edge", None) or {}).get("architecture"):
        _write_record(cfg, architecture_of(model))


def mask_model(model, keep: dict) -> None:
    """Zero (in place) every head and channel that ``keep`` leaves out, keeping dense shapes.

    The masked dense model computes what the surgically pruned one computes (tests check this).
    """
    hd = model.config.d_model // model.config.encoder_attention_heads
    with torch.no_grad():
        for side, i, layer, spec, names in _layer_specs(model, keep):
            for key, attr in names:
                if key not in spec:
                    continue
                att = getattr(layer, attr)
                drop = sorted(set(range(att.num_heads)) - set(spec[key]))
                if drop:
                    rows = _head_rows(torch.tensor(drop), hd)
                    for lin in (att.q_proj, att.k_proj, att.v_proj):
                        lin.weight[rows] = 0
                        if lin.bias is not None:
                            lin.bias[rows] = 0
                    att.out_proj.weight[:, rows] = 0
            if "ffn" in spec:
                drop = sorted(set(range(layer.fc1.out_features)) - set(spec["ffn"]))
                if drop:
                    d = torch.tensor(drop)
                    layer.fc1.weight[d] = 0
                    layer.fc1.bias[d] = 0
                    layer.fc2.weight[:, d] = 0


def resolve_model_dir(path: str | Path) -> Path:
    """A model folder, or a training/pruning run folder whose best model is in ``best/``."""
    path = Path(path)
    if (path / "config.json").is_file():
        return path
    for sub in ("best", "model", "final"):
        if (path / sub / "config.json").is_file():
            return path / sub
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist")
    raise FileNotFoundError(f"{path} is not a model folder (no config.json, nor best/config.json); "
                            "create one with 'whisper-edge model import', 'train' or 'prune'")


def load_checkpoint(model_dir: str | Path, *, device: str | None = "cpu", dtype: torch.dtype = torch.float32):
    """Load a dense or pruned checkpoint folder → (model, processor). Pruned shapes come from the record."""
    import transformers
    from safetensors.torch import load_file
    from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor

    transformers.logging.set_verbosity_error()
    model_dir = resolve_model_dir(model_dir)
    config = WhisperConfig.from_pretrained(model_dir)
    arch = Architecture.from_config(config)
    weights = sorted(model_dir.glob("*.safetensors"))
    if not weights:
        raise FileNotFoundError(f"{model_dir} has no *.safetensors weights")
    from transformers.modeling_utils import no_init_weights

    with no_init_weights():
        model = WhisperForConditionalGeneration(config)
    dense = Architecture.dense(config)
    if not arch.same_shape(dense):
        shape_model(model, arch)
    state = {}
    for f in weights:
        state.update(load_file(str(f)))
    _check_shapes(model, state, model_dir, has_record=not arch.same_shape(dense))
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "proj_out.weight"]  # tied to the token embedding
    if missing or unexpected:
        raise ArchitectureError(f"{model_dir}: weights do not match the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.tie_weights()
    model.to(dtype)
    if (model_dir / "generation_config.json").is_file():
        from transformers import GenerationConfig

        model.generation_config = GenerationConfig.from_pretrained(model_dir)
    try:
        processor = WhisperProcessor.from_pretrained(model_dir)
    except (OSError, ValueError) as exc:
        raise FileNotFoundError(f"{model_dir} has no usable processor files (tokenizer, preprocessor_config.json): {exc}") from None
    if device:
        model.to(device)
    return model.eval(), processor


def _check_shapes(model, state: dict, where: Path, has_record: bool = True) -> None:
    own = model.state_dict()
    for name, t in state.items():
        if name in own and tuple(own[name].shape) != tuple(t.shape):
            parts = name.split(".")
            where_ = name
            if "layers" in parts:
                j = parts.index("layers")
                where_ = f"{parts[j - 1]} layer {parts[j + 1]} ({'.'.join(parts[j + 2:])})"
            raise ArchitectureError(
                f"{where}: {where_} has shape {tuple(t.shape)} but the architecture record implies "
                f"{tuple(own[name].shape)}; " + ("the checkpoint and its config.json disagree (was config.json edited or "
                "copied from another model?)" if has_record else "the weights look pruned but config.json has no "
                "whisper_edge.architecture record: keep the config.json that 'prune' wrote with its weights"))


def save_checkpoint(model, processor, out: str | Path, *, extra_files: dict[str, object] | None = None,
                    generation_config=None, overwrite: bool = False) -> Path:
    """save_pretrained into a temporary folder, then rename: a crash leaves no half checkpoint.

    An existing ``out`` is replaced only with ``overwrite`` and only if it is a checkpoint whisper-edge wrote.
    """
    from ..runtime.fsutil import atomic_dir

    out = Path(out)
    arch, dense = architecture_of(model), Architecture.dense(model.config)
    if not arch.same_shape(dense):
        _write_record(model.config, arch)
    with atomic_dir(out, kind="checkpoint", overwrite=overwrite) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
        if generation_config is not None:
            generation_config.save_pretrained(tmp)
        for name, obj in (extra_files or {}).items():
            (tmp / name).write_text(obj if isinstance(obj, str) else json.dumps(obj, indent=2, ensure_ascii=False), encoding="utf-8")
    return out


@torch.no_grad()
def fold_removed_biases(model, keep: dict) -> None:
    """Before removing groups, move what they still add as constants into the biases that stay.

    A removed FFN channel j adds ``fc2[:, j] · gelu(fc1_j·x + b_j)``; with its weights near zero that is the
    constant ``fc2[:, j] · gelu(b_j)``, which goes into fc2.bias. A removed head adds ``out_proj[:, h] ·
    (attention-weighted v)``; the value bias passes through attention unchanged (weights sum to one), so
    ``out_proj[:, h] · v_bias_h`` goes into out_proj.bias. Exact when the removed weights are zero (SGL's
    proximal step); a first-order correction otherwise.
    """
    hd = model.config.d_model // model.config.encoder_attention_heads
    for side, i, layer, spec, names in _layer_specs(model, keep):
        for key, attr in names:
            att = getattr(layer, attr)
            if key not in spec or isinstance(att, EmptyAttention) or att.v_proj.bias is None:
                continue
            drop = sorted(set(range(att.num_heads)) - set(spec[key]))
            if drop:
                rows = _head_rows(torch.tensor(drop, device=att.v_proj.bias.device), hd)
                att.out_proj.bias += att.out_proj.weight[:, rows] @ att.v_proj.bias[rows]
        if "ffn" in spec and layer.fc1.out_features:
            drop = sorted(set(range(layer.fc1.out_features)) - set(spec["ffn"]))
            if drop:
                d = torch.tensor(drop, device=layer.fc1.bias.device)
                layer.fc2.bias += layer.fc2.weight[:, d] @ nn.functional.gelu(layer.fc1.bias[d])
