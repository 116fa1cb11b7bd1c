"""The dynamic audio context: trained (recipe dynamic_ctx), recorded, exported with a free frame axis, used by the
runtime per clip — and exactly what PyTorch computes on the same shorter window."""

import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from whisper_edge.exporter.export import export_bundle
from whisper_edge.runtime.bundle import BundleError
from whisper_edge.runtime.features import dynamic_ctx, window_samples
from whisper_edge.runtime.manifest import ManifestError, encoder_frames_fixed, parse_manifest
from whisper_edge.runtime.transcribe import DecodeOptions, Transcriber
from whisper_edge.training.architecture import load_checkpoint
from whisper_edge.training.batches import SpeechCollator
from whisper_edge.training.context import allow_short_windows, batch_positions
from whisper_edge.training.recipes import RecipeError, load_recipe
from whisper_edge.training.train import train

FAST = {"batch_size": 4, "eval_every": 0, "save_every": 2, "warmup_steps": 1, "max_label_tokens": 40}


def test_the_window_rule_rounds_up_with_a_margin_and_stays_within_the_context():
    assert dynamic_ctx(3.2 * 16000, 500) == 200  # 160 positions + 25 → 185 → 200 (a 4-s window)
    assert dynamic_ctx(1, 500) == 50  # at least one block
    assert dynamic_ctx(9.9 * 16000, 500) == 500  # never more than the model has
    assert dynamic_ctx(3.2 * 16000, 500, block=10, margin=0) == 160
    with pytest.raises(ValueError, match="block"):
        dynamic_ctx(16000, 500, block=0)


def test_batches_draw_shorter_windows_at_the_share_and_the_same_draw_on_resume(tiny_model):
    _, processor = load_checkpoint(tiny_model)
    lengths, texts = [2 * 16000, 3 * 16000], ["क", "ख"]
    assert batch_positions(lengths, texts, 300, 0.0, 0) == 300
    assert batch_positions(lengths, texts, 300, 1.0, 0) == dynamic_ctx(3 * 16000, 300) == 200
    draws = [batch_positions(lengths, [f"{i}"], 300, 0.5, 0) for i in range(200)]
    assert 0.35 < np.mean([d == 200 for d in draws]) < 0.65
    assert draws == [batch_positions(lengths, [f"{i}"], 300, 0.5, 0) for i in range(200)]
    collate = SpeechCollator(processor, 300, "hi", 40, dynamic=1.0)
    batch = collate([(np.zeros(16000, np.float32), "क"), (np.zeros(2 * 16000, np.float32), "ख")])
    assert batch["input_features"].shape[-1] == 2 * dynamic_ctx(2 * 16000, 300) == 300


def test_a_model_trained_for_it_exports_a_bundle_that_encodes_each_clip_in_its_own_window(tiny_model, speech_corpus,
                                                                                         tmp_path, clips, caplog):
    run = tmp_path / "run"
    train(tiny_model, speech_corpus, load_recipe("dense", FAST | {"max_steps": 2, "dynamic_ctx": 1.0}), run)
    model, _ = load_checkpoint(run / "model")
    assert model.config.whisper_edge["dynamic_ctx"] == {"block": 50, "margin": 25}
    bundle = tmp_path / "bundle"
    export_bundle(run / "model", bundle)
    m = json.loads((bundle / "manifest.json").read_text())
    assert m["dynamic_ctx"] == {"block": 50, "margin": 25}
    short_rows = [r for r in m["validation"]["fp32"]["tensors"] if "window" in r["output"]]
    assert short_rows and all(r["ok"] for r in short_rows)  # the graphs match PyTorch on a shorter window too

    tr = Transcriber(bundle)
    assert tr.dynamic == {"block": 50, "margin": 25} and not encoder_frames_fixed(tr.encoder)
    wav = np.asarray(__import__("soundfile").read(clips[0]["path"], dtype="float32")[0])[: 2 * 16000]
    mel = tr.features(wav)
    positions = dynamic_ctx(len(wav), 300)
    assert mel.shape == (80, 2 * positions) and positions < 300
    cross = tr.encode(mel[None])
    assert next(iter(cross.values())).shape[2] == positions
    ids = tr.decode_greedy(cross, DecodeOptions(max_new_tokens=12, repetition_guard=0))
    allow_short_windows(model)  # the same window through Hugging Face's encoder and decoder: the same greedy tokens
    prompt = tr.prompt(None)
    with torch.no_grad():
        enc = model.model.encoder(torch.from_numpy(mel[None])).last_hidden_state
        logits = model(encoder_outputs=(enc,), decoder_input_ids=torch.tensor([prompt + ids[:-1]])).logits[0].numpy()
    logits = logits[len(prompt) - 1:]
    logits[:, tr.suppress] = -np.inf
    logits[0, tr.begin_suppress] = -np.inf
    assert len(ids) == 12 and logits.argmax(-1).tolist() == ids
    fixed = Transcriber(bundle, session_options={"audio_window": "fixed"})
    assert fixed.dynamic is None and fixed.features(wav).shape == (80, 600)

    # a later stage keeps training shorter windows unless its recipe turns them off (then it says so)
    with caplog.at_level(logging.WARNING, logger="whisper_edge"):
        train(run / "model", speech_corpus, load_recipe("dense", FAST | {"max_steps": 1}), tmp_path / "later")
        assert "dynamic audio context" not in caplog.text
        train(run / "model", speech_corpus, load_recipe("dense", FAST | {"max_steps": 1, "dynamic_ctx": 0.0}),
              tmp_path / "off")
    assert "trains full windows only" in caplog.text
    assert load_checkpoint(tmp_path / "later" / "model")[0].config.whisper_edge["dynamic_ctx"]


def test_a_model_not_trained_for_it_keeps_the_full_window_unless_asked(tiny_bundle, caplog):
    assert Transcriber(tiny_bundle).dynamic is None  # auto: the manifest does not say it was trained
    with caplog.at_level(logging.WARNING, logger="whisper_edge"):
        forced = Transcriber(tiny_bundle, session_options={"audio_window": "dynamic"})
    assert forced.dynamic and "not trained" in caplog.text
    assert forced.features(np.zeros(16000, np.float32)).shape == (80, 200)  # 1 s + 0.5 s → a 2-s window
    with pytest.raises(ValueError, match="audio_window must be one of auto, fixed, dynamic"):
        Transcriber(tiny_bundle, session_options={"audio_window": "short"})


def test_bad_settings_are_refused_with_the_field(tiny_bundle):
    m = json.loads((tiny_bundle / "manifest.json").read_text())
    for bad in ({"block": 0, "margin": 25}, {"block": 50}, {"block": 50, "margin": -1}, "yes"):
        with pytest.raises(ManifestError, match="dynamic_ctx"):
            parse_manifest(m | {"dynamic_ctx": bad})
    assert parse_manifest(m | {"dynamic_ctx": {"block": 50, "margin": 25}}).dynamic_ctx == {"block": 50, "margin": 25}
    fixed = SimpleNamespace(get_inputs=lambda: [SimpleNamespace(name="mel", shape=["batch", 80, 600])])
    assert encoder_frames_fixed(fixed) and not encoder_frames_fixed(
        SimpleNamespace(get_inputs=lambda: [SimpleNamespace(name="mel", shape=["batch", 80, "frames"])]))
    with pytest.raises(RecipeError, match="dynamic_ctx"):
        load_recipe("dense", {"dynamic_ctx": 1.5})


def test_an_old_fixed_window_bundle_refuses_a_forced_dynamic_window(tiny_bundle, tmp_path, monkeypatch):
    import whisper_edge.runtime.transcribe as t

    monkeypatch.setattr(t, "encoder_frames_fixed", lambda session: True)
    assert Transcriber(tiny_bundle).dynamic is None
    with pytest.raises(BundleError, match="fixed window"):
        Transcriber(tiny_bundle, session_options={"audio_window": "dynamic"})
    assert window_samples(300) == 96000


def test_bench_runs_a_bundle_under_each_window_rule_and_profiles_can_choose_one(tiny_bundle, speech_corpus, tmp_path,
                                                                                  capsys):
    from whisper_edge.cli import main
    from whisper_edge.runtime.profiles import ProfileError, load_profile

    out = tmp_path / "bench"
    assert main(["bench", "--bundle", str(tiny_bundle), "--data", str(speech_corpus), "--limit", "2", "--repeats", "1",
                 "--max-new-tokens", "3", "--audio-window", "fixed,dynamic", "--out", str(out)]) == 0
    rows = json.loads((out / "bench.json").read_text())["rows"]
    assert [r["label"] for r in rows] == ["tiny [fixed window]", "tiny [dynamic window]"]
    for r in rows:
        assert "error" not in r and sum(b["clips"] for b in r["encoder_ms_by_length"]) == 2
    assert "Encoder ms per window by clip length" in (out / "bench.md").read_text()
    assert main(["bench", "--bundle", str(tiny_bundle), "--data", str(speech_corpus), "--audio-window", "short",
                 "--out", str(tmp_path / "b2")]) == 2
    assert "--audio-window: unknown ['short']" in capsys.readouterr().err and not (tmp_path / "b2").exists()
    good = tmp_path / "p.yaml"
    good.write_text("arch: x86_64\nsession: {audio_window: dynamic}\n")
    assert load_profile(good).session_options()["audio_window"] == "dynamic"
    good.write_text("arch: x86_64\nsession: {audio_window: sometimes}\n")
    with pytest.raises(ProfileError, match="audio_window"):
        load_profile(good)


def test_a_run_recorded_before_a_recipe_field_existed_still_resumes():
    from whisper_edge.training.recipes import Recipe
    from whisper_edge.training.train import _with_defaults

    now = Recipe().to_dict()
    old = {k: v for k, v in now.items() if k != "dynamic_ctx"}
    old["augment"] = {k: v for k, v in now["augment"].items() if k != "p_babble"}
    assert _with_defaults(old, now) == now
    assert _with_defaults(old | {"max_steps": 7}, now) != now


def test_a_sized_window_whose_text_loops_is_decoded_again_in_the_full_window(tiny_bundle, monkeypatch):
    """runs/paper10's pruned model said one sentence three times in the window sized to a clip, once in the full one."""
    import whisper_edge.runtime.decoding as decoding
    from whisper_edge.runtime.decoding import periodic
    from whisper_edge.runtime.transcribe import Transcriber

    sentence = "हमें एक बजे तक मेरठ पहुँचना है।".split()
    assert periodic(sentence * 3) and periodic(sentence * 2 + sentence[:2])  # a last copy cut short
    assert not periodic(sentence) and not periodic(["हाँ"] * 4) and not periodic([]) and not periodic(sentence + ["नहीं"] + sentence)
    tr = Transcriber(tiny_bundle, session_options={"audio_window": "dynamic"})
    frames = []

    def fake(t, cross, opts):  # a loop in the sized window, one sentence in the full one
        frames.append(t.last_mel_frames)
        return ([5, 6, 7, 8] * 3 if len(frames) == 1 else [5, 6, 7, 8]), {"temperature": 0.0}

    monkeypatch.setattr(tr, "text", lambda ids: " ".join(f"w{i}" for i in ids))

    real_encode = tr.encode

    def encode(mel):
        tr.last_mel_frames = mel.shape[-1]
        return real_encode(mel)

    monkeypatch.setattr(decoding, "decode_with_fallback", fake)
    monkeypatch.setattr(tr, "encode", encode)
    clip = np.zeros(16000, dtype=np.float32)
    assert tr._decode_window(clip, tr._capped(decoding.DecodeOptions())) == [5, 6, 7, 8]
    assert frames[0] < frames[1] == 2 * tr.audio_ctx and tr.last_decode["full_window"]
    frames.clear()
    monkeypatch.setattr(decoding, "decode_with_fallback", lambda t, c, o: (frames.append(1) or [5, 6, 7, 9], {}))
    assert tr._decode_window(clip, tr._capped(decoding.DecodeOptions())) == [5, 6, 7, 9] and len(frames) == 1
