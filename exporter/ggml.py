"""A dense Whisper checkpoint → whisper.cpp's ggml model file (f16, or q8_0), for the bench's whisper.cpp peer.

The format is whisper.cpp's ``models/convert-pt-to-ggml.py`` (github.com/ggml-org/whisper.cpp; the loader is
``whisper_model_load`` in src/whisper.cpp), written here from the Hugging Face checkpoint our pipeline makes:

- int32 magic ``0x67676d6c`` ("ggml"), then 11 int32 hyper-parameters: n_vocab, n_audio_ctx, n_audio_state,
  n_audio_head, n_audio_layer, n_text_ctx, n_text_state, n_text_head, n_text_layer, n_mels, ftype
  (1 = f16; a quantized file stores ``ftype + 1000 × GGML_QNT_VERSION`` = 2007 for q8_0);
- the mel filter bank: int32 n_mels, int32 n_fft/2+1, float32 values (n_mels rows);
- the BPE vocabulary without special tokens: int32 count, then per token (in id order) int32 length + raw bytes
  (the byte-level characters of vocab.json mapped back to bytes; ``<|endoftext|>`` and later ids are left out:
  whisper.cpp numbers its special tokens itself);
- every tensor under openai-whisper's names: int32 n_dims, int32 name length, int32 ggml type (0 f32, 1 f16,
  8 q8_0), the dims innermost first, the name, the data. 1-D tensors, the conv biases (as n × 1) and the
  positional embeddings stay f32; q8_0 quantizes the other 2-D tensors in blocks of 32 along a row (an f16 scale
  ``max|x| / 127`` and 32 int8 values per block), as whisper.cpp's own ``quantize`` tool does.

whisper.cpp's hyper-parameters hold one head count and imply one FFN width (4 × d_model) for every layer, so a
checkpoint with pruned heads or channels cannot be written: :func:`write_ggml` refuses it with the reason.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

import numpy as np

__all__ = ["write_ggml", "GgmlError", "hf_to_openai_name"]

MAGIC = 0x67676D6C
GGML_QNT_VERSION_FACTOR, GGML_QNT_VERSION = 1000, 2
FTYPES = {"f16": 1, "q8_0": 7}  # the file's ftype (GGML_FTYPE_MOSTLY_F16 / _Q8_0)
TYPE_F32, TYPE_F16, TYPE_Q8_0 = 0, 1, 8
KEEP_F32 = ("encoder.conv1.bias", "encoder.conv2.bias", "encoder.positional_embedding", "decoder.positional_embedding")


class GgmlError(ValueError):
    pass


_LAYER_PARTS = {
    "self_attn.q_proj": "attn.query", "self_attn.k_proj": "attn.key", "self_attn.v_proj": "attn.value",
    "self_attn.out_proj": "attn.out", "self_attn_layer_norm": "attn_ln",
    "encoder_attn.q_proj": "cross_attn.query", "encoder_attn.k_proj": "cross_attn.key",
    "encoder_attn.v_proj": "cross_attn.value", "encoder_attn.out_proj": "cross_attn.out",
    "encoder_attn_layer_norm": "cross_attn_ln", "fc1": "mlp.0", "fc2": "mlp.2", "final_layer_norm": "mlp_ln",
}
_TOP = {
    "model.encoder.conv1": "encoder.conv1", "model.encoder.conv2": "encoder.conv2",
    "model.encoder.embed_positions.weight": "encoder.positional_embedding", "model.encoder.layer_norm": "encoder.ln_post",
    "model.decoder.embed_tokens.weight": "decoder.token_embedding.weight",
    "model.decoder.embed_positions.weight": "decoder.positional_embedding", "model.decoder.layer_norm": "decoder.ln",
}


def hf_to_openai_name(name: str) -> str | None:
    """transformers' Whisper parameter name → openai-whisper's (the names whisper.cpp loads); None: not written."""
    if name == "proj_out.weight":  # tied to the token embedding
        return None
    for hf, oa in _TOP.items():
        if name == hf or name.startswith(hf + "."):
            return oa + name[len(hf):]
    parts = name.split(".")
    if len(parts) >= 5 and parts[0] == "model" and parts[2] == "layers":
        side, layer, rest = parts[1], parts[3], ".".join(parts[4:])
        for hf, oa in _LAYER_PARTS.items():
            if rest.startswith(hf + "."):
                return f"{side}.blocks.{layer}.{oa}{rest[len(hf):]}"
    raise GgmlError(f"no whisper.cpp name for the parameter {name!r}")


def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte ↔ printable-character table, inverted (the byte-level BPE's vocab.json spelling)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def _check_uniform(cfg: dict, tensors: dict) -> None:
    d, heads_e, heads_d = cfg["d_model"], cfg["encoder_attention_heads"], cfg["decoder_attention_heads"]
    for name, t in tensors.items():
        if name.endswith("fc1.weight") and t.shape != (4 * d, d):
            raise GgmlError(f"{name} has {t.shape[0]} FFN channels; whisper.cpp needs every layer at 4 × d_model = {4 * d} "
                            "(its file format has one FFN width for the whole model). A pruned checkpoint cannot run in "
                            "whisper.cpp: export it as an ONNX bundle ('whisper-edge export') instead")
        if name.endswith(("q_proj.weight", "k_proj.weight", "v_proj.weight")) and t.shape != (d, d):
            heads = t.shape[0] // (d // (heads_e if ".encoder." in name else heads_d))
            raise GgmlError(f"{name} keeps {heads} heads; whisper.cpp needs every layer with all "
                            f"{heads_e if '.encoder.' in name else heads_d} heads (its file format has one head count per "
                            "side). A pruned checkpoint cannot run in whisper.cpp: export it as an ONNX bundle instead")


def _q8_0(x: np.ndarray) -> bytes:
    rows, n = x.shape
    if n % 32:
        raise GgmlError(f"q8_0 needs rows of a multiple of 32 values, got {n}")
    blocks = x.astype(np.float32).reshape(-1, 32)
    d = np.abs(blocks).max(1) / 127.0
    inv = np.where(d > 0, 1.0 / np.where(d > 0, d, 1.0), 0.0)
    q = np.clip(np.rint(blocks * inv[:, None]), -127, 127).astype(np.int8)
    out = np.empty(len(blocks), dtype=[("d", "<f2"), ("qs", "i1", (32,))])
    out["d"], out["qs"] = d.astype(np.float16), q
    return out.tobytes()


def write_ggml(model_dir, out_file, *, ftype: str = "f16") -> Path:
    """Write ``model_dir`` (a dense transformers Whisper folder) as a whisper.cpp ggml file; atomic."""
    from safetensors.numpy import load_file

    from ..runtime.features import mel_filters
    from ..runtime.fsutil import atomic_write_bytes

    if ftype not in FTYPES:
        raise GgmlError(f"ggml ftype {ftype!r} is not supported; choose from {', '.join(FTYPES)}")
    model_dir = Path(model_dir)
    cfg = json.loads((model_dir / "config.json").read_text())
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        raise GgmlError(f"{model_dir} has no model.safetensors (a checkpoint from 'model import' or 'train' is needed)")
    tensors = {}
    for f in files:
        tensors.update(load_file(str(f)))
    _check_uniform(cfg, tensors)
    vocab = json.loads((model_dir / "vocab.json").read_text(encoding="utf-8"))
    eot = vocab.get("<|endoftext|>", 50257)
    dec = _byte_decoder()
    words = sorted((i, w) for w, i in vocab.items() if i < eot)
    if [i for i, _ in words] != list(range(eot)):
        raise GgmlError(f"{model_dir}/vocab.json does not number its tokens 0..{eot - 1} without gaps")

    n_audio_ctx = tensors["model.encoder.embed_positions.weight"].shape[0]
    hp = [cfg["vocab_size"], n_audio_ctx, cfg["d_model"], cfg["encoder_attention_heads"], cfg["encoder_layers"],
          cfg["max_target_positions"], cfg["d_model"], cfg["decoder_attention_heads"], cfg["decoder_layers"],
          cfg["num_mel_bins"], FTYPES[ftype] + (GGML_QNT_VERSION_FACTOR * GGML_QNT_VERSION if ftype != "f16" else 0)]
    parts = [struct.pack("<i", MAGIC), struct.pack("<11i", *hp)]
    filters = mel_filters(cfg["num_mel_bins"]).T.astype(np.float32)  # (n_mels, n_fft/2 + 1)
    parts += [struct.pack("<ii", *filters.shape), filters.tobytes()]
    parts.append(struct.pack("<i", len(words)))
    for _, w in words:
        b = bytes(dec[c] for c in w)
        parts += [struct.pack("<i", len(b)), b]
    for hf_name in sorted(tensors):
        name = hf_to_openai_name(hf_name)
        if name is None:
            continue
        data = tensors[hf_name].astype(np.float32)
        if name in ("encoder.conv1.bias", "encoder.conv2.bias"):
            data = data.reshape(-1, 1)
        if data.ndim < 2 or name in KEEP_F32:
            kind, raw = TYPE_F32, data.astype("<f4").tobytes()
        elif ftype == "q8_0" and data.ndim == 2:
            kind, raw = TYPE_Q8_0, _q8_0(data)
        else:
            kind, raw = TYPE_F16, data.astype("<f2").tobytes()
        enc = name.encode()
        parts += [struct.pack("<iii", data.ndim, len(enc), kind), struct.pack(f"<{data.ndim}i", *data.shape[::-1]), enc, raw]
    out_file = Path(out_file)
    atomic_write_bytes(out_file, b"".join(parts))
    return out_file


def read_ggml_header(path: str | os.PathLike) -> dict:
    """The hyper-parameters of a ggml file (for checks and tests)."""
    with open(path, "rb") as f:
        magic, *hp = struct.unpack("<12i", f.read(48))
    if magic != MAGIC:
        raise GgmlError(f"{path} is not a ggml file (magic {magic:#x})")
    keys = ["n_vocab", "n_audio_ctx", "n_audio_state", "n_audio_head", "n_audio_layer", "n_text_ctx", "n_text_state",
            "n_text_head", "n_text_layer", "n_mels", "ftype"]
    return dict(zip(keys, hp))
