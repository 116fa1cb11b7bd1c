"""Runtime: log-mel against transformers, long audio in windows, bad input, profiles, and the bench."""

import json
import logging
import os
from dataclasses import replace

import numpy as np
import pytest

from whisper_edge.runtime.audio import AudioError
from whisper_edge.runtime.features import log_mel, mel_filters
from whisper_edge.runtime.profiles import ProfileError, list_profiles, load_profile
from whisper_edge.runtime.transcribe import DecodeOptions, Transcriber, _repeats


def test_log_mel_equals_transformers_feature_extractor(whisper_base, clips):
    from transformers import WhisperFeatureExtractor

    from whisper_edge.runtime.audio import load_audio

    fe = WhisperFeatureExtractor.from_pretrained(whisper_base)
    assert np.abs(fe.mel_filters - mel_filters(80)).max() < 1e-6
    for wav in (load_audio(clips[0]["path"]), np.random.default_rng(0).standard_normal(16000 * 5).astype(np.float32) * 0.1):
        ref = fe(wav, sampling_rate=16000, return_tensors="np").input_features[0]
        assert np.abs(ref - log_mel(wav, n_samples=480000)).max() < 1e-4
        ref10 = fe(wav, sampling_rate=16000, return_tensors="np", padding="max_length", max_length=160000).input_features[0]
        assert ref10.shape == (80, 1000) and np.abs(ref10 - log_mel(wav, n_samples=160000)).max() < 1e-4


def test_long_audio_is_split_into_windows_not_truncated(tiny_bundle):
    tr = Transcriber(tiny_bundle)  # 6-s windows
    wav = np.random.default_rng(1).standard_normal(16000 * 14).astype(np.float32) * 0.05
    text, tokens = tr.transcribe(wav, options=DecodeOptions(max_new_tokens=3), return_tokens=True)
    assert len(tokens) == 3 and tr.timings.windows == 3


def test_bad_audio_is_an_error_naming_the_file(tiny_bundle, tmp_path):
    tr = Transcriber(tiny_bundle)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    with pytest.raises(AudioError, match="bad.wav"):
        tr.transcribe(bad)
    with pytest.raises(AudioError, match="empty"):
        tr.transcribe(np.zeros(0, dtype=np.float32))
    with pytest.raises(ValueError, match="language 'xx'"):
        tr.transcribe(np.zeros(16000, dtype=np.float32), options=DecodeOptions(language="xx"))


def test_beam_search_and_repetition_guard(tiny_bundle):
    tr = Transcriber(tiny_bundle)
    wav = np.random.default_rng(2).standard_normal(16000 * 2).astype(np.float32) * 0.05
    text, tokens = tr.transcribe(wav, options=DecodeOptions(beam=3, max_new_tokens=6), return_tokens=True)
    assert len(tokens[0]) <= 6 and text == tr.text(tokens[0]).strip()
    assert _repeats([1, 2, 3, 2, 3, 2, 3, 2, 3], 4) and not _repeats([1, 2, 3, 4, 5, 6], 2)
    guarded = tr.transcribe(wav, options=DecodeOptions(max_new_tokens=60, repetition_guard=3), return_tokens=True)[1][0]
    free = tr.transcribe(wav, options=DecodeOptions(max_new_tokens=60), return_tokens=True)[1][0]
    assert len(guarded) <= len(free)


def test_restart_guard_drops_a_second_copy_of_the_text(tiny_bundle):
    """A window that starts over (session 17: a quantized model said its sentence twice) ends before the copy."""
    from whisper_edge.runtime.decoding import restarts

    sentence = [7, 8, 9, 10, 11, 12]
    assert restarts(sentence + sentence[:4], 4) == 4 and restarts(sentence + sentence[:3], 4) == 0
    assert restarts([1, 2, 3, 4, 1, 2, 9], 2) == 0 and restarts([5] * 6, 2) == 2 and restarts(sentence, 0) == 0
    spaced = sentence + [70] + sentence[1:4]  # the copy's first token is the first word with a leading space
    assert restarts(spaced, 4) == 0 and restarts(spaced, 4, lambda a, b: {a, b} == {7, 70}) == 4
    tr = Transcriber(tiny_bundle)
    wav = np.random.default_rng(2).standard_normal(16000 * 2).astype(np.float32) * 0.05
    opts = DecodeOptions(max_new_tokens=60, temperatures=(0.0,), compression_ratio_threshold=None)
    free = tr.transcribe(wav, options=opts, return_tokens=True)[1][0]
    guarded = tr.transcribe(wav, options=replace(opts, restart_guard=2), return_tokens=True)[1][0]
    # the free text up to where it first starts over, less the copy (all of it when it never does)
    first = next((n for n in range(1, len(free) + 1) if restarts(free[:n], 2)), None)
    assert guarded == (free if first is None else free[:first - restarts(free[:first], 2)])


def test_profiles_load_validate_and_fall_back(tiny_bundle, tmp_path, caplog):
    assert set(list_profiles()) >= {"raspberry-pi-4", "raspberry-pi-5", "jetson-orin-nano", "x86-laptop", "generic-arm64"}
    for name in list_profiles():
        p = load_profile(name)
        assert p.reasons and p.threads >= 1
    with pytest.raises(ProfileError, match="unknown device profile 'pi9'"):
        load_profile("pi9")
    for text, message in (("threads: 2\nturbo: true\n", "unknown key 'turbo'"), ("threads: 0\n", "'threads'"),
                          ("session: {arena: yes please}\n", "'arena' must be true or false"),
                          ("session: {prepack: false}\n", "unknown session setting 'prepack'")):
        bad = tmp_path / "p.yaml"
        bad.write_text(text)
        with pytest.raises(ProfileError, match=message):
            load_profile(bad)
    jetson = load_profile("jetson-orin-nano")
    with caplog.at_level(logging.WARNING, logger="whisper_edge"):
        tr = Transcriber(tiny_bundle, providers=jetson.providers)
    assert tr.providers == ["CPUExecutionProvider"] and "not available" in caplog.text


def test_session_settings_come_from_the_profile(tiny_bundle, tmp_path):
    prof = tmp_path / "lean.yaml"
    prof.write_text("threads: 1\nsession: {arena: true, mem_pattern: false}\n")
    p = load_profile(prof)
    assert p.session_options() == {"enable_cpu_mem_arena": True, "enable_mem_pattern": False}
    tr = Transcriber(tiny_bundle, threads=p.threads, session_options=p.session_options())
    so = tr.encoder.get_session_options()
    assert so.enable_cpu_mem_arena and not so.enable_mem_pattern
    default = Transcriber(tiny_bundle).decoder.get_session_options()
    assert not default.enable_cpu_mem_arena and default.enable_mem_pattern  # the runtime's default: no arena


def test_bench_compares_backends_on_the_same_clips(tiny_bundle, tiny_model, speech_corpus, tmp_path):
    from whisper_edge.cli import main

    out = tmp_path / "bench"
    assert main(["bench", "--bundle", str(tiny_bundle), "--data", str(speech_corpus), "--limit", "2", "--repeats", "1",
                 "--compare", "pytorch", "--model", str(tiny_model), "--out", str(out)]) == 0
    report = json.loads((out / "bench.json").read_text())
    assert [r["backend"] for r in report["rows"]] == ["ours", "pytorch"]
    for r in report["rows"]:
        assert "error" not in r, r
        assert r["peak_rss_mb"] > 10 and r["rtf"] > 0 and r["encoder_ms"] > 0 and r["wer"] >= 0
        assert r["rtf_median"] >= r["rtf"] and 0 <= r["other_load"] <= 1 and r["busy"] == (r["other_load"] > 0.10)
    d = report["rows"][1]["wer_vs_first"]  # the same clips: a paired difference against the first row
    assert d["lo"] <= d["diff"] <= d["hi"] and d["utterances"] == 2 and "wer_vs_first" not in report["rows"][0]
    assert "| tiny |" in (out / "bench.md").read_text() and (out / "bench.png").stat().st_size > 1000


def test_other_load_subtracts_the_bench_itself_and_timestamp_errors_find_the_nearest_boundary():
    from whisper_edge.runtime.bench import other_load, timestamp_errors

    cpus = os.cpu_count()
    # 10 s of wall, the worker used 10 CPU-s, the machine was busy 10 + 5 CPU-s: others used 5 of 10 × cpus
    assert other_load(100.0, 115.0, 10.0, 10.0) == pytest.approx(5 / (10 * cpus))
    assert other_load(100.0, 109.0, 10.0, 10.0) == 0.0 and other_load(None, 1.0, 0.0, 1.0) is None
    truth = [{"start": 0.5, "end": 3.0}, {"start": 3.6, "end": 7.2}]
    # one segment spans both utterances (a VAD region packed up to the window): start 0.4 (0.1 off), end 7.5 (0.3 off)
    assert timestamp_errors([[0.4, 7.5]], truth) == pytest.approx([0.1, 0.3])
    assert timestamp_errors([[3.5, 3.1]], truth) == pytest.approx([0.1, 0.1])


def test_restart_guard_on_the_command_line(tiny_bundle, clips, capsys):
    from whisper_edge.cli import main

    wav = str(clips[0]["path"])
    assert main(["transcribe", "--bundle", str(tiny_bundle), wav, "--temperatures", "0", "--max-new-tokens", "40",
                 "--restart-guard", "2"]) == 0
    guarded = capsys.readouterr().out
    assert main(["transcribe", "--bundle", str(tiny_bundle), wav, "--temperatures", "0", "--max-new-tokens", "40"]) == 0
    free = capsys.readouterr().out
    assert len(guarded) <= len(free)
    assert main(["transcribe", "--bundle", str(tiny_bundle), wav, "--restart-guard", "-1"]) == 2
    assert "restart_guard must be ≥ 0" in capsys.readouterr().err
