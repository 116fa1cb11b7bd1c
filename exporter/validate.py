"""Validation of an export against PyTorch: tensors (output names, then shapes, then values, as optimum-onnx
checks), greedy tokens against ``generate``, and WER of a bundle on reference clips. Every export target reuses it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..training.architecture import architecture_of
from .quantize import MODES
from .wrappers import DecoderWrapper, EncoderWrapper

__all__ = ["ValidationError", "sessions", "tensor_checks", "token_checks", "bundle_wer", "default_samples",
           "format_validation"]


class ValidationError(RuntimeError):
    """An export whose graphs disagree with PyTorch beyond tolerance (the table says where)."""


def sessions(tmp: Path):
    import onnxruntime as ort

    from ..runtime.cpu import exact_int8

    so = ort.SessionOptions()
    so.log_severity_level = 3
    exact_int8(so)  # as the runtime runs it (runtime/cpu.py)
    return (ort.InferenceSession(str(tmp / "encoder.onnx"), so, providers=["CPUExecutionProvider"]),
            ort.InferenceSession(str(tmp / "decoder.onnx"), so, providers=["CPUExecutionProvider"]))


def tensor_checks(model, tmp: Path, names: dict, quant: str, mels: list[np.ndarray], prompt: list[int]) -> list[dict]:
    """Run both graphs and the PyTorch wrappers on the same inputs; max abs diff per output."""
    enc_s, dec_s = sessions(tmp)
    enc_w, dec_w = EncoderWrapper(model).eval(), DecoderWrapper(model).eval()
    tol = MODES[quant].tolerance
    rows = []
    mel = np.stack(mels[:2]).astype(np.float32)
    with torch.no_grad():
        ref_cross = [t.numpy() for t in enc_w(torch.from_numpy(mel))]
    _same_names("encoder", [o.name for o in enc_s.get_outputs()], names["encoder_outputs"], len(ref_cross))
    got_cross = enc_s.run(None, {"mel": mel})
    for n, r, g in zip(names["encoder_outputs"], ref_cross, got_cross, strict=True):
        rows.append({"graph": "encoder", "output": n, "max_abs_diff": _diff("encoder", n, r, g), "tolerance": tol["cross"]})
    b = mel.shape[0]
    toks = np.array([prompt] * b, dtype=np.int64)
    hd = architecture_of(model).head_dim
    past = {n: np.zeros((b, model.model.decoder.layers[i].self_attn.num_heads, 0, hd), np.float32)
            for i in names["self_layers"] for n in (f"self_k_{i}", f"self_v_{i}")}
    cross = dict(zip(names["encoder_outputs"], ref_cross))
    feeds = feeds_prompt = {"tokens": toks, "offset": np.array(0, dtype=np.int64), **past, **cross}
    _same_names("decoder", [o.name for o in dec_s.get_outputs()], names["decoder_outputs"], len(names["decoder_outputs"]))
    for stage in ("prompt", "next token"):
        with torch.no_grad():
            ref = [t.numpy() for t in dec_w(*(torch.from_numpy(np.asarray(feeds[k])) for k in names["decoder_inputs"]))]
        got = dec_s.run(None, feeds)
        for n, r, g in zip(names["decoder_outputs"], ref, got, strict=True):
            kind = "logits" if n == "logits" else "cache"
            rows.append({"graph": "decoder", "output": f"{n} ({stage})", "max_abs_diff": _diff("decoder", n, r, g),
                         "tolerance": tol[kind]})
        nxt = ref[0][:, -1].argmax(-1)[:, None].astype(np.int64)
        feeds = {"tokens": nxt, "offset": np.array(toks.shape[1], dtype=np.int64), **cross,
                 **{n.replace("new_", ""): r for n, r in zip(names["decoder_outputs"][1:], ref[1:])}}
    rows += _short_window_checks(enc_s, dec_s, enc_w, dec_w, names, mel[:1], feeds_prompt, tol)
    for r in rows:
        r["ok"] = bool(r["max_abs_diff"] <= r["tolerance"])
    return rows


def _short_window_checks(enc_s, dec_s, enc_w, dec_w, names: dict, mel: np.ndarray, prompt_feeds: dict, tol) -> list[dict]:
    """The dynamic audio context: the same graphs on a window of half the positions (encoder outputs, then the
    prompt's logits over the shorter cross-attention)."""
    short = mel.shape[-1] // 4  # positions: half the window
    if short < 1:
        return []
    m = np.ascontiguousarray(mel[..., : 2 * short])
    with torch.no_grad():
        ref = [t.numpy() for t in enc_w(torch.from_numpy(m))]
    got = enc_s.run(None, {"mel": m})
    rows = [{"graph": "encoder", "output": f"{n} ({short}-position window)", "max_abs_diff": _diff("encoder", n, r, g),
             "tolerance": tol["cross"]} for n, r, g in zip(names["encoder_outputs"], ref, got, strict=True)]
    feeds = {k: (v[:1] if isinstance(v, np.ndarray) and v.ndim else v) for k, v in prompt_feeds.items()} | dict(
        zip(names["encoder_outputs"], ref))
    with torch.no_grad():
        want = dec_w(*(torch.from_numpy(np.asarray(feeds[k])) for k in names["decoder_inputs"]))[0].numpy()
    rows.append({"graph": "decoder", "output": f"logits (prompt, {short}-position window)",
                 "max_abs_diff": _diff("decoder", "logits", want, dec_s.run(["logits"], feeds)[0]), "tolerance": tol["logits"]})
    return rows


def _same_names(graph: str, got: list[str], want: list[str], n_ref: int) -> None:
    """First check of three (names, shapes, values): every expected output exists, in order, and PyTorch gave as many."""
    if got != list(want) or n_ref != len(want):
        missing, extra = [x for x in want if x not in got], [x for x in got if x not in want]
        raise ValidationError(f"the {graph} graph's outputs are {got}, expected {list(want)} (missing {missing}, "
                              f"unexpected {extra}; PyTorch gave {n_ref}): the export is broken, not just imprecise")


def _diff(graph: str, name: str, ref: np.ndarray, got: np.ndarray) -> float:
    """Second and third checks: the shapes agree, then the largest absolute difference."""
    if ref.shape != got.shape:
        raise ValidationError(f"{graph} output {name}: ONNX gives shape {list(got.shape)}, PyTorch {list(ref.shape)}")
    return float(np.abs(ref - got).max()) if ref.size else 0.0


def default_samples() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 3) / 16000
    return [(0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32),
            (0.05 * rng.standard_normal(16000 * 2)).astype(np.float32)]


def token_checks(model, processor, bundle: Path, samples: list[np.ndarray], language: str,
                  vocab_map: list[int] | None = None) -> list[dict]:
    """Greedy tokens of the bundle (runtime decoder) against PyTorch generate (with a trimmed vocabulary:
    generate on the full model with the dropped tokens suppressed, which is the same argmax)."""
    from ..runtime.transcribe import DecodeOptions, Transcriber

    tr = Transcriber(bundle, verify=False, session_options={"audio_window": "fixed"})  # generate takes the full window
    rows = []
    for k, wav in enumerate(samples):
        mel = tr.features(wav)
        ours = tr.decode_greedy(tr.encode(mel[None]), DecodeOptions(max_new_tokens=40, language=language))
        feats = torch.from_numpy(mel[None])
        with torch.no_grad():
            extra = {}
            if vocab_map is not None:
                dropped = sorted(set(range(model.config.vocab_size)) - set(vocab_map))
                extra["suppress_tokens"] = list(model.generation_config.suppress_tokens or []) + dropped
            ref = model.generate(input_features=feats, language=language, task="transcribe", do_sample=False,
                                 num_beams=1, max_new_tokens=40, **extra)[0].tolist()
        prompt_len = 4 if len(ref) and ref[0] == 50258 else 0
        ref = [t for t in ref[prompt_len:] if t != model.generation_config.eos_token_id]
        if tr.to_old is not None:
            ours = [int(tr.to_old[t]) for t in ours]
        rows.append({"sample": k, "same_tokens": ours == ref, "tokens": len(ours)})
    return rows


def bundle_wer(bundle: Path, clips, language: str) -> float:
    from ..runtime.metrics import NORMALIZERS, error_rates
    from ..runtime.transcribe import DecodeOptions, Transcriber

    tr = Transcriber(bundle, verify=False)
    # plain greedy decoding (no temperature fallback): the quantization is judged, not the guards
    hyps = [tr.transcribe(wav, options=DecodeOptions(language=language, repetition_guard=4, temperatures=(0.0,))) for wav, _ in clips]
    return round(error_rates([r for _, r in clips], hyps, NORMALIZERS["hindi"])["wer"], 2)


def format_validation(rows: list[dict], tokens: list[dict] | None = None) -> str:
    lines = ["| graph | output | max abs diff | tolerance | |", "|---|---|---:|---:|---|"]
    for r in rows:
        lines.append(f"| {r['graph']} | {r['output']} | {r['max_abs_diff']:.2e} | {r['tolerance']:.0e} | {'✓' if r['ok'] else '✗'} |")
    for t in tokens or []:
        lines.append(f"| greedy decode | sample {t['sample']} ({t['tokens']} tokens) | | same tokens as PyTorch | "
                     f"{'✓' if t['same_tokens'] else '✗'} |")
    return "\n".join(lines)
