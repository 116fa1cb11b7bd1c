"""ONNX export of dense and pruned checkpoints: validation, quantization, vocabulary trimming, bundles."""

import json
import os
import tarfile

import numpy as np
import onnx
import pytest
import torch

from whisper_edge.cli import main
from whisper_edge.exporter.export import ExportOptions, ValidationError, export_bundle
from whisper_edge.runtime.bundle import BundleError, pack_archive, unpack_archive, verify_bundle
from whisper_edge.runtime.transcribe import DecodeOptions, Transcriber
from whisper_edge.training.architecture import load_checkpoint


def _onnx_bytes(bundle):
    m = json.loads((bundle / "manifest.json").read_text())
    return sum(v["bytes"] for k, v in m["files"].items() if k.endswith(".onnx"))


def test_dense_bundle_validates_and_records_everything(tiny_bundle):
    m = verify_bundle(tiny_bundle)
    v = m["validation"]["fp32"]
    assert all(r["ok"] for r in v["tensors"]) and all(t["same_tokens"] for t in v["tokens"])
    assert m["graphs"]["decoder"]["inputs"][:4] == ["tokens", "offset", "self_k_0", "self_v_0"]
    meta = {p.key: p.value for p in onnx.load(str(tiny_bundle / "encoder.onnx")).metadata_props}
    assert json.loads(meta["whisper_edge.architecture"]) == m["architecture"]
    assert m["audio_ctx"] == 300


def test_pruned_bundle_is_smaller_and_matches_pytorch(tiny_pruned, tiny_bundle, tmp_path, clips):
    out = tmp_path / "pruned"
    assert main(["export", "--model", str(tiny_pruned), "--out", str(out)]) == 0
    m = verify_bundle(out)
    assert m["graphs"]["decoder"]["inputs"] == ["tokens", "offset", "self_k_1", "self_v_1", "cross_k_0", "cross_v_0",
                                                "cross_k_1", "cross_v_1"]
    # bytes fall at least by the removed share of the encoder/decoder layer weights
    from whisper_edge.training.counts import model_counts

    model, _ = load_checkpoint(tiny_pruned)
    removed = model_counts(model)["params"]["removed"] * 4
    assert _onnx_bytes(tiny_bundle) - _onnx_bytes(out) >= 0.95 * removed
    # the runtime's greedy decode equals PyTorch generate on a real clip
    tr = Transcriber(out)
    wav = __import__("whisper_edge.runtime.audio", fromlist=["load_audio"]).load_audio(clips[0]["path"])
    ids = tr.decode_greedy(tr.encode(tr.features(wav)[None]), DecodeOptions(max_new_tokens=20))
    with torch.no_grad():
        ref = model.generate(input_features=torch.from_numpy(tr.features(wav)[None]), language="hi", task="transcribe",
                             max_new_tokens=20)[0].tolist()
    ref = ref[4:] if ref[:1] == [50258] else ref  # generate may return the prompt
    ref = [t for t in ref if t != 50257]
    assert ids == ref


@pytest.mark.parametrize("quant", ["int8", "fp16", "int4", "int8w"])
def test_quantized_bundles_are_smaller_and_validated(tiny_model, tiny_bundle, tmp_path, quant):
    clip = (np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.05, "नमस्ते")
    clips = (clip,) if quant != "fp16" else ()  # judged by WER with clips, by tensor tolerances without
    m = export_bundle(tiny_model, tmp_path / quant, ExportOptions(quantize=quant, int8_encoder=True, wer_clips=clips))
    assert m["quantization"] == quant and all(r["ok"] for r in m["validation"][quant]["tensors"])
    if clips:
        assert set(m["metrics"]["validation_wer"]) >= {"fp32", quant, "clips"} and "wer" in m["validation"][quant]
    assert _onnx_bytes(tmp_path / quant) < {"int8": 0.35, "fp16": 0.6, "int4": 0.35, "int8w": 0.6}[quant] * _onnx_bytes(tiny_bundle)
    if quant in ("int4", "int8w"):  # weight-only: MatMulNBits in both graphs, the embedding block-quantized
        for g in ("encoder", "decoder"):
            graph = onnx.load(str(tmp_path / quant / f"{g}.onnx")).graph
            weights = {t.name for t in graph.initializer}
            assert "MatMulNBits" in {n.op_type for n in graph.node}
            assert not [n.name for n in graph.node if n.op_type == "MatMul" and n.input[1] in weights]  # every weight packed
        lookup = {"int4": "GatherBlockQuantized", "int8w": "DequantizeLinear"}[quant]  # 4-bit blocks, or int8 + dequantize
        assert lookup in {n.op_type for n in onnx.load(str(tmp_path / quant / "decoder.onnx")).graph.node}
    tr = Transcriber(tmp_path / quant)
    text, tokens = tr.transcribe(np.zeros(16000, dtype=np.float32), options=DecodeOptions(max_new_tokens=3, temperatures=(0.0,)),
                                 return_tokens=True)
    assert len(tokens[0]) <= 3 and all(0 <= t < tr.info.vocab_size for t in tokens[0]) and text == tr.text(tokens[0])


def test_vocabulary_trimming_keeps_hindi_and_maps_ids_back(tiny_model, speech_corpus, tmp_path, tiny_bundle):
    out = tmp_path / "vocab"
    assert main(["export", "--model", str(tiny_model), "--out", str(out), "--vocab", "hi", "--data", str(speech_corpus),
                 "--samples", "2"]) == 0
    m = verify_bundle(out)
    assert 1700 < len(m["vocab_map"]) < 6000 and m["vocab_map"] == sorted(m["vocab_map"])
    assert all(t["same_tokens"] for t in m["validation"]["fp32"]["tokens"])
    assert _onnx_bytes(out) < 0.3 * _onnx_bytes(tiny_bundle)
    tr = Transcriber(out)
    sentence = "मेरा भाई शहर के अस्पताल में काम करता है।"
    new_ids = [tr.to_new[i] for i in tr.tokenizer.encode(sentence, add_special_tokens=False).ids]
    assert tr.text(new_ids) == sentence
    # the tokenizer file is trimmed too, and decodes every kept id as the full one does
    assert (out / "tokenizer.json").stat().st_size < 0.2 * (tiny_bundle / "tokenizer.json").stat().st_size
    from tokenizers import Tokenizer

    full = Tokenizer.from_file(str(tiny_bundle / "tokenizer.json"))
    rng = np.random.default_rng(0)
    for _ in range(50):
        ids = [int(i) for i in rng.choice(m["vocab_map"], 6)]
        assert tr.tokenizer.decode(ids, skip_special_tokens=False) == full.decode(ids, skip_special_tokens=False)


def test_tampered_missing_and_newer_bundles_are_refused(tiny_bundle, tmp_path):
    import shutil

    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    with open(b / "encoder.onnx", "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(BundleError, match="encoder.onnx fails its sha256"):
        verify_bundle(b)
    assert main(["bundle", "verify", str(b)]) == 2
    with pytest.raises(BundleError, match="sha256"):
        Transcriber(b)
    (b / "encoder.onnx").unlink()
    with pytest.raises(BundleError, match="encoder.onnx is missing"):
        verify_bundle(b)
    shutil.rmtree(b)
    shutil.copytree(tiny_bundle, b)
    m = json.loads((b / "manifest.json").read_text())
    (b / "manifest.json").write_text(json.dumps(m | {"format_version": 99}))
    with pytest.raises(BundleError, match="newer than this runtime"):
        Transcriber(b)
    with pytest.raises(BundleError, match="no manifest.json"):
        verify_bundle(tmp_path)


def test_archive_round_trip_and_unsafe_members(tiny_bundle, tmp_path):
    arc = pack_archive(tiny_bundle, tmp_path / "tiny.tar")
    out = unpack_archive(arc, tmp_path / "unpacked")
    assert verify_bundle(out)["files"] == verify_bundle(tiny_bundle)["files"]
    assert Transcriber(arc).path != tiny_bundle  # an archive opens through the cache
    for name, kind in (("../evil", tarfile.REGTYPE), ("/abs", tarfile.REGTYPE), ("link", tarfile.SYMTYPE)):
        bad = tmp_path / f"bad-{kind!r}.tar"
        with tarfile.open(bad, "w") as tar:
            info = tarfile.TarInfo(name)
            info.type = kind
            if kind == tarfile.SYMTYPE:
                info.linkname = "/etc/passwd"
                tar.addfile(info)
            else:
                data = b"x"
                info.size = 1
                import io

                tar.addfile(info, io.BytesIO(data))
        with pytest.raises(BundleError, match="refusing"):
            unpack_archive(bad, tmp_path / "never")
        assert not (tmp_path / "never").exists()


def test_checkpoint_without_its_record_is_a_clear_error(tiny_pruned, tmp_path):
    import shutil

    bad = tmp_path / "norecord"
    shutil.copytree(tiny_pruned, bad)
    cfg = json.loads((bad / "config.json").read_text())
    del cfg["whisper_edge"]["architecture"]
    (bad / "config.json").write_text(json.dumps(cfg))
    assert main(["export", "--model", str(bad), "--out", str(tmp_path / "x")]) == 2
    with pytest.raises(ValueError, match=r"layer 0 \(.*\) has shape .* no whisper_edge.architecture record"):
        export_bundle(bad, tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_unwritable_output_leaves_no_half_bundle(tiny_pruned, tmp_path, capsys):
    # root writes anywhere, so a file stands where the output's parent folder would be (root-proof, as in test_corpus)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["export", "--model", str(tiny_pruned), "--out", str(blocker / "b"), "--no-verify"]) == 2
    assert "writable" in capsys.readouterr().err
    assert blocker.read_text() == "x" and [p.name for p in tmp_path.iterdir()] == ["file"]


def test_optimum_baseline_exports_dense_and_refuses_pruned(tiny_model, tiny_pruned, tmp_path):
    assert main(["export", "--baseline", "optimum", "--model", str(tiny_model), "--out", str(tmp_path / "opt")]) == 0
    assert (tmp_path / "opt" / "encoder_model.onnx").is_file() and (tmp_path / "opt" / "decoder_model_merged.onnx").is_file()
    from whisper_edge.exporter.baseline import export_optimum

    with pytest.raises(ValueError, match="pruned"):
        export_optimum(tiny_pruned, tmp_path / "opt2")


def test_model_without_cross_attention_is_refused_before_export(tiny_model, tmp_path):
    """With every cross-attention head removed the output ignores the audio; the exporter says so (ONNX Runtime
    would otherwise fail on an encoder graph with no output) and writes nothing."""
    from whisper_edge.training.architecture import apply_surgery, load_checkpoint, save_checkpoint

    model, processor = load_checkpoint(tiny_model)
    apply_surgery(model, {"decoder": [{"cross_heads": []}, {"cross_heads": []}]})
    src = save_checkpoint(model, processor, tmp_path / "no-cross", generation_config=model.generation_config)
    with pytest.raises(ValueError, match="no decoder layer has a cross-attention head"):
        export_bundle(src, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()


def test_profile_drives_the_export_and_a_flag_wins(tiny_model, tmp_path, capsys):
    prof = tmp_path / "tiny-device.yaml"
    prof.write_text("description: a made-up board\nquantization: int8\naudio_ctx: 200\nthreads: 3\n")
    out = tmp_path / "by-profile"
    assert main(["export", "--model", str(tiny_model), "--out", str(out), "--profile", str(prof)]) == 0
    m = verify_bundle(out)
    assert m["quantization"] == "int8" and m["audio_ctx"] == 200 and m["profile"] == str(prof)
    assert m["settings"]["audio_ctx"] == {"value": 200, "from": "profile tiny-device"}
    assert m["settings"]["threads"]["value"] == 3 and "from profile tiny-device" in capsys.readouterr().out
    assert Transcriber(out).n_samples == 200 * 320  # the runtime follows the exported window
    flagged = tmp_path / "flag-wins"
    assert main(["export", "--model", str(tiny_model), "--out", str(flagged), "--profile", str(prof), "--quantize", "none"]) == 0
    m = verify_bundle(flagged)
    assert m["quantization"] == "none" and m["settings"]["quantization"] == {"value": "none", "from": "flag"}


def test_the_wer_gate_refuses_a_variant_that_loses_words(tiny_model, tmp_path):
    """The quantized variant is judged by WER against fp32: a bound it cannot meet refuses the export, and nothing is
    left at --out (a gate that can fail, not one that passes by construction)."""
    clip = (np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.05, "नमस्ते")
    with pytest.raises(ValidationError, match="WER on 1 validation clips"):
        export_bundle(tiny_model, tmp_path / "gated", ExportOptions(quantize="int8", wer_clips=(clip,), max_wer_increase=-1.0))
    assert not (tmp_path / "gated").exists()
