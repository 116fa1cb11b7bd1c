"""``whisper-edge export``: a (pruned) checkpoint → a verified ONNX bundle.

Steps: load (the record gives every layer's width; pruned groups are physically gone) → optional
vocabulary trimming → ONNX export of our own wrappers (opset 17, dynamic batch and lengths) →
validation against PyTorch (max abs diff per output against named tolerances; for fp32, greedy
tokens identical to PyTorch generate on sample clips) → optional quantization (int8 dynamic or fp16
weights), validated again → manifest with sizes and checksums. Everything is written into a
temporary folder that replaces OUT only when all of it succeeded.
"""

from __future__ import annotations

import json
import logging
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .validate import ValidationError

from ..runtime.features import window_samples
from ..runtime.bundle import FORMAT, FORMAT_VERSION, file_entry, verify_bundle
from ..runtime.fsutil import atomic_dir, check_output
from .quantize import MODES, quantize_graphs
from ..training.architecture import architecture_of, load_checkpoint, resolve_model_dir
from ..training.context import trained_dynamic
from .validate import bundle_wer, default_samples, format_validation, tensor_checks, token_checks
from .wrappers import DecoderWrapper, EncoderWrapper, io_names

__all__ = ["ExportOptions", "export_bundle", "ValidationError", "TOLERANCES", "format_validation"]

log = logging.getLogger("whisper_edge")

TOLERANCES = {name: mode.tolerance for name, mode in MODES.items()}  # one owner: exporter/quantize.py
OPSET = 17


@dataclass(frozen=True)
class ExportOptions:
    quantize: str = "none"  # none | int8 | fp16
    vocab: str | None = None  # None | "hi": keep the special tokens and those the language's text needs
    vocab_text: tuple[str, ...] = ()  # text that defines the kept tokens (the training transcripts)
    verify: bool = True
    samples: tuple = ()  # 16-kHz arrays for token-level validation (a tone and noise when empty)
    language: str = "hi"
    profile: str | None = None
    int8_encoder: bool = False  # int8 also for the encoder (off: its activations have outliers that per-tensor
    #                              dynamic quantization turns into errors of the size of the outputs themselves)
    wer_clips: tuple = ()  # (16-kHz array, reference) pairs: WER of fp32 and of the quantized variant → manifest
    max_wer_increase: float = 1.0  # with wer_clips, a quantized variant passes on WER (absolute points) instead of
    #                                 on tensor tolerances, which int8 activations exceed without harm to the text
    overwrite: bool = False  # replace an existing bundle in --out (never a folder whisper-edge did not make)
    audio_ctx: int | None = None  # encoder positions of the exported graphs (a device profile's); None: the model's
    smooth_alpha: float | None = None  # SmoothQuant's migration strength for the int8 encoder (exporter/smooth.py)
    encoder_fp32: int = 0  # int8 encoder: keep the K weight groups its sensitivity scan ranks worst in fp32 (sensitivity.py)
    settings: dict | None = None  # where each setting came from (flag / profile / default): recorded in the manifest

    def __post_init__(self):
        if self.quantize not in TOLERANCES:
            raise ValueError(f"--quantize must be one of {', '.join(MODES)}, got {self.quantize!r}")
        if self.vocab not in (None, "hi"):
            raise ValueError(f"--vocab must be 'hi' (or left out), got {self.vocab!r}")
        if self.smooth_alpha is not None and not (self.quantize == "int8" and self.int8_encoder and 0 < self.smooth_alpha <= 1):
            raise ValueError(f"--smooth-alpha (got {self.smooth_alpha}) is a number in (0, 1] for the int8 encoder: it needs "
                             "--quantize int8 --int8-encoder")
        if self.encoder_fp32 and not (self.quantize == "int8" and self.int8_encoder and self.encoder_fp32 > 0):
            raise ValueError(f"--encoder-fp32 (got {self.encoder_fp32}) is a count of weight groups the int8 encoder keeps "
                             "in fp32: it needs --quantize int8 --int8-encoder")
        if self.audio_ctx is not None and not 1 <= self.audio_ctx <= 1500:
            raise ValueError(f"--audio-ctx must be within 1…1500 encoder positions (1500 = 30 s), got {self.audio_ctx}")


def _export_onnx(model, tmp: Path, names: dict) -> None:
    cfg = model.config
    A = cfg.max_source_positions
    enc, dec = EncoderWrapper(model).eval(), DecoderWrapper(model).eval()
    mel = torch.zeros(1, cfg.num_mel_bins, 2 * A)
    with torch.no_grad():
        cross = enc(mel)
    torch.onnx.export(enc, (mel,), str(tmp / "encoder.onnx"), input_names=names["encoder_inputs"],
                      output_names=names["encoder_outputs"], dynamic_axes=names["dynamic_axes_encoder"],
                      opset_version=OPSET, dynamo=False, do_constant_folding=True)
    hd = architecture_of(model).head_dim
    past = [torch.zeros(1, model.model.decoder.layers[i].self_attn.num_heads, 3, hd)
            for i in names["self_layers"] for _ in (0, 1)]
    args = (torch.tensor([[0, 1]]), torch.tensor(3), *past, *cross)
    torch.onnx.export(dec, args, str(tmp / "decoder.onnx"), input_names=names["decoder_inputs"],
                      output_names=names["decoder_outputs"], dynamic_axes=names["dynamic_axes_decoder"],
                      opset_version=OPSET, dynamo=False, do_constant_folding=True)
    for f in ("encoder.onnx", "decoder.onnx"):
        if (tmp / f).stat().st_size > 1.9 * 2**30:  # protobuf's 2-GB limit: move weights to external data
            import onnx

            m = onnx.load(str(tmp / f))
            onnx.save_model(m, str(tmp / f), save_as_external_data=True, location=f + ".data")


def _tokens_block(processor, gen) -> dict:
    tok = processor.tokenizer
    conv = tok.convert_tokens_to_ids
    return {"sot": conv("<|startoftranscript|>"), "eot": conv("<|endoftext|>"), "transcribe": conv("<|transcribe|>"),
            "translate": conv("<|translate|>"), "no_timestamps": conv("<|notimestamps|>"),
            "languages": {k.strip("<|>"): int(v) for k, v in (getattr(gen, "lang_to_id", None) or {}).items()},
            "suppress": [int(x) for x in (gen.suppress_tokens or [])],
            "begin_suppress": [int(x) for x in (gen.begin_suppress_tokens or [])]}


def export_bundle(model_dir, out, opts: ExportOptions = ExportOptions()) -> dict:
    """Export ``model_dir`` into the bundle folder ``out``; returns the manifest."""
    check_output(out, "bundle", overwrite=opts.overwrite, inputs=[model_dir])  # before hours of work, not after
    model_dir = resolve_model_dir(model_dir)
    model, processor = load_checkpoint(model_dir)
    model.eval()
    model.generation_config.forced_decoder_ids = None
    if opts.audio_ctx and opts.audio_ctx < model.config.max_source_positions:
        from ..training.architecture import trim_audio_context

        log.warning("audio context %d → %d positions: a model not trained for the shorter window may lose accuracy "
                    "(the int8/int4 WER check and docs/export.md say by how much)", model.config.max_source_positions, opts.audio_ctx)
        trim_audio_context(model, opts.audio_ctx)
    elif opts.audio_ctx and opts.audio_ctx > model.config.max_source_positions:
        log.warning("the model has %d encoder positions; the requested %d cannot be added: keeping %d",
                    model.config.max_source_positions, opts.audio_ctx, model.config.max_source_positions)
    arch = architecture_of(model)
    if not any(layer["cross_heads"] for layer in arch.decoder):
        raise ValueError(f"{model_dir}: no decoder layer has a cross-attention head left, so the transcript no longer "
                         "depends on the audio and the encoder graph would have no output; prune less (a lower "
                         "--strength, or a smaller sgl.lambda_dec)")
    smoothing = None
    if opts.smooth_alpha:  # exact in fp32, so the fp32 checks below still hold; before the reference copy
        from .smooth import smooth_encoder

        smoothing = smooth_encoder(model, _calibration_mels(model, opts, 16), opts.smooth_alpha)
        log.info("SmoothQuant α=%s on %d clips: channel spread (max/median) %s → %s", opts.smooth_alpha,
                 smoothing["clips"], smoothing["spread_before"], smoothing["spread_after"])
    vocab_map, reference = None, model
    if opts.vocab:
        import copy

        from .vocab import trim_vocabulary

        reference = copy.deepcopy(model)  # greedy tokens are checked against the full-vocabulary model
        vocab_map = trim_vocabulary(model, processor, opts.vocab_text)
    names = io_names(model)
    samples = list(opts.samples) or default_samples()
    t0 = time.perf_counter()
    with atomic_dir(out, kind="bundle", overwrite=opts.overwrite, inputs=[model_dir]) as tmp:
        _export_onnx(model, tmp, names)
        mels = [_mel(model, s) for s in samples]
        processor.tokenizer.backend_tokenizer.save(str(tmp / "tokenizer.json"))
        if vocab_map is not None:  # the tokenizer file keeps only what the kept ids need (exporter/vocab.py)
            from .vocab import trim_tokenizer

            path = tmp / "tokenizer.json"
            path.write_text(json.dumps(trim_tokenizer(json.loads(path.read_text(encoding="utf-8")), vocab_map),
                                       ensure_ascii=False), encoding="utf-8")
        manifest = {
            "format": FORMAT, "format_version": FORMAT_VERSION,
            "architecture": arch.to_dict(), "audio_ctx": arch.audio_ctx, "n_mels": model.config.num_mel_bins,
            "sample_rate": 16000, "mel": {"n_fft": 400, "hop": 160},
            "vocab_size": int(model.config.vocab_size), "vocab_map": vocab_map,
            "vocab": opts.vocab or "full",
            "dynamic_ctx": trained_dynamic(model.config),
            "tokens": _tokens_block(processor, model.generation_config),
            "language": opts.language, "task": "transcribe",
            "graphs": {"encoder": {"file": "encoder.onnx", "inputs": names["encoder_inputs"], "outputs": names["encoder_outputs"]},
                       "decoder": {"file": "decoder.onnx", "inputs": names["decoder_inputs"], "outputs": names["decoder_outputs"]}},
            "quantization": opts.quantize, "opset": OPSET, "profile": opts.profile, "settings": opts.settings,
            "provenance": {"model": str(model_dir), "whisper_edge": _version(), "torch": torch.__version__,
                           "onnxruntime": _ort_version(), "python": platform.python_version(),
                           "model_provenance": (getattr(model.config, "whisper_edge", None) or {}).get("provenance")},
            "metrics": {},
        }
        validation = {}
        tb = manifest["tokens"]
        prompt = [tb["sot"], tb["languages"].get(opts.language, tb["sot"]), tb["transcribe"], tb["no_timestamps"]]
        if vocab_map is not None:
            prompt = [vocab_map.index(t) for t in prompt]
        if opts.verify:
            rows = tensor_checks(model, tmp, names, "none", mels, prompt)
            _write_manifest(tmp, manifest)
            tokens = token_checks(reference, processor, tmp, samples, opts.language, vocab_map)
            validation["fp32"] = {"tensors": rows, "tokens": tokens}
            table = format_validation(rows, tokens)
            log.debug("validation (fp32):\n%s", table)
            if not all(r["ok"] for r in rows) or not all(t["same_tokens"] for t in tokens):
                raise ValidationError(f"the fp32 ONNX graphs disagree with PyTorch:\n{table}")
        wer = {}
        if opts.wer_clips:
            _write_manifest(tmp, manifest)
            wer["fp32"] = bundle_wer(tmp, opts.wer_clips, opts.language)
        if opts.quantize != "none":
            exclude = ()
            if opts.encoder_fp32:
                from .quantize import MODES
                from .sensitivity import scan_encoder, weight_groups

                groups = weight_groups(tmp / "encoder.onnx")
                scan = scan_encoder(tmp / "encoder.onnx", _calibration_mels(model, opts, 8), MODES["int8"].apply, groups)
                keep = [r["group"] for r in scan[:opts.encoder_fp32]]
                exclude = tuple(n for g in keep for n in groups[g])
                manifest["encoder_scan"] = {"fp32_groups": keep, "rows": scan}
                log.info("int8 encoder: %s stay fp32 (sensitivity scan, error all-int8 %.4f)", ", ".join(keep),
                         scan[0]["error_all_int8"] if scan else 0.0)
            quantize_graphs(tmp, opts.quantize, encoder=opts.int8_encoder, encoder_exclude=exclude)
            manifest["int8_encoder"] = bool(opts.int8_encoder) if opts.quantize == "int8" else None
            manifest["smooth_quant"] = smoothing
            if opts.wer_clips:
                _write_manifest(tmp, manifest)
                wer[opts.quantize] = bundle_wer(tmp, opts.wer_clips, opts.language)
            if opts.verify:
                rows = tensor_checks(model, tmp, names, opts.quantize, mels, prompt)
                validation[opts.quantize] = {"tensors": rows}
                table = format_validation(rows)
                if wer:
                    delta = wer[opts.quantize] - wer["fp32"]
                    ok = delta <= opts.max_wer_increase
                    validation[opts.quantize]["wer"] = {"fp32": wer["fp32"], opts.quantize: wer[opts.quantize],
                                                        "max_increase": opts.max_wer_increase, "ok": ok}
                    table += (f"\n| WER on {len(opts.wer_clips)} validation clips | fp32 {wer['fp32']:.2f} → "
                              f"{opts.quantize} {wer[opts.quantize]:.2f} | {delta:+.2f} | ≤ {opts.max_wer_increase:+.1f} | {'✓' if ok else '✗'} |")
                    failed = not ok  # the text decides; tensor differences are reported
                else:
                    failed = not all(r["ok"] for r in rows)
                log.debug("validation (%s):\n%s", opts.quantize, table)
                if failed:
                    hint = ("" if wer else f"\nWithout clips the {opts.quantize} graphs are judged by tensor differences, which "
                            "quantized activations can exceed without changing the text: give --data (validation clips, "
                            "--wer-clips N) so the export judges the variant by its WER against fp32.")
                    raise ValidationError(f"the {opts.quantize} graphs are beyond tolerance:\n{table}{hint}")
        if wer:
            manifest["metrics"]["validation_wer"] = wer | {"clips": len(opts.wer_clips), "normalizer": "hindi"}
        manifest["validation"] = validation
        manifest["metrics"]["export_seconds"] = round(time.perf_counter() - t0, 1)
        _write_manifest(tmp, manifest)
        _stamp_metadata(tmp, manifest)
        _write_manifest(tmp, manifest)
        verify_bundle(tmp)
    return manifest


def _calibration_mels(model, opts: ExportOptions, n: int) -> list[np.ndarray]:
    """Mels of the validation clips (``--data``), else of the token-check samples: the statistics' input."""
    calib = [a for a, _ in opts.wer_clips] or list(opts.samples) or default_samples()
    return [_mel(model, a) for a in calib[:n]]


def _mel(model, wav: np.ndarray) -> np.ndarray:
    from ..runtime.features import log_mel

    return log_mel(wav, n_samples=window_samples(model.config.max_source_positions), n_mels=model.config.num_mel_bins)


def _write_manifest(tmp: Path, manifest: dict) -> None:
    from ..runtime.manifest import parse_manifest

    files = sorted(p.name for p in tmp.iterdir() if p.is_file() and p.name != "manifest.json")
    manifest["files"] = {f: file_entry(tmp / f) for f in files}
    parse_manifest(manifest, "the manifest being written")  # the schema's one owner checks the writer too
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _stamp_metadata(tmp: Path, manifest: dict) -> None:
    """Write the record and format version into each graph's metadata_props (ONNX's own key/value list)."""
    import onnx

    for g in manifest["graphs"].values():
        path = tmp / g["file"]
        m = onnx.load(str(path), load_external_data=False)
        del m.metadata_props[:]
        for k, v in (("whisper_edge.format_version", str(FORMAT_VERSION)),
                     ("whisper_edge.architecture", json.dumps(manifest["architecture"])),
                     ("whisper_edge.quantization", manifest["quantization"]),
                     ("whisper_edge.audio_ctx", str(manifest["audio_ctx"]))):
            e = m.metadata_props.add()
            e.key, e.value = k, v
        onnx.save_model(m, str(path))


def _version() -> str:
    from .. import __version__

    return __version__


def _ort_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
