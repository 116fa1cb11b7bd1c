"""Bad input gets a one-line error that names the input and the fix, and silent wrong results are gone (issue 12)."""

from __future__ import annotations

import json
import shutil
import tarfile

import numpy as np
import pytest
import soundfile as sf

from whisper_edge.cli import main
from whisper_edge.runtime.audio import AudioError, as_waveform, load_audio
from whisper_edge.runtime.bundle import BundleError, pack_archive, unpack_archive, verify_bundle
from whisper_edge.runtime.transcribe import DecodeOptions, Transcriber

from ..conftest import tone


def _edited(bundle, tmp_path, change):
    b = tmp_path / "edited"
    shutil.copytree(bundle, b)
    m = json.loads((b / "manifest.json").read_text())
    change(m)
    (b / "manifest.json").write_text(json.dumps(m))
    return b


@pytest.mark.parametrize("field,change,match", [
    ("audio_ctx", lambda m: (m.__setitem__("audio_ctx", 200), m["architecture"].__setitem__("audio_ctx", 200)), "audio_ctx"),
    ("n_mels", lambda m: m.__setitem__("n_mels", 128), "n_mels"),
    ("head_dim", lambda m: m["architecture"].__setitem__("head_dim", 32), "self_k_|cross_k_"),
    ("cross heads", lambda m: m["architecture"]["decoder"][0].__setitem__("cross_heads", 1), "cross_k_0"),
    ("format_version 0", lambda m: m.__setitem__("format_version", 0), "format_version"),
    ("format_version true", lambda m: m.__setitem__("format_version", True), "format_version"),
    ("missing tokens", lambda m: m.pop("tokens"), "'tokens'"),
    ("mel settings", lambda m: m.__setitem__("mel", {"n_fft": 512, "hop": 160}), "mel"),
    ("quantization", lambda m: m.__setitem__("quantization", "int3"), "quantization"),
])
def test_a_manifest_that_disagrees_with_its_graphs_is_refused_by_name(tiny_bundle, tmp_path, field, change, match):
    b = _edited(tiny_bundle, tmp_path, change)
    with pytest.raises(BundleError, match=match):
        Transcriber(b)


def test_missing_tokenizer_is_named(tiny_bundle, tmp_path):
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    (b / "tokenizer.json").unlink()
    with pytest.raises(BundleError, match="tokenizer.json"):
        Transcriber(b)


def test_truncated_and_padded_archives_are_refused(tiny_bundle, tmp_path):
    archive = pack_archive(tiny_bundle, tmp_path / "b.tar")
    cut = tmp_path / "cut.tar"
    cut.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(BundleError, match="damaged or truncated"):
        unpack_archive(cut, tmp_path / "u1")
    assert not (tmp_path / "u1").exists()
    extra = tmp_path / "extra.tar"
    shutil.copy(archive, extra)
    (tmp_path / "evil.bin").write_bytes(b"x" * 1000)
    with tarfile.open(extra, "a") as tar:
        tar.add(tmp_path / "evil.bin", arcname="evil.bin")
    with pytest.raises(BundleError, match="not listed"):
        unpack_archive(extra, tmp_path / "u2")
    assert main(["bundle", "unpack", str(cut), str(tmp_path / "u3")]) == 2


def test_profiles_and_thread_counts_are_checked(tiny_bundle, tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("threads: [2\n")
    assert main(["transcribe", "--bundle", str(tiny_bundle), "--profile", str(bad), "x.wav"]) == 2
    assert "not valid YAML" in capsys.readouterr().err
    bad.write_text("threads: 2.5\n")
    assert main(["transcribe", "--bundle", str(tiny_bundle), "--profile", str(bad), "x.wav"]) == 2
    assert "'threads'" in capsys.readouterr().err
    for n in (-3, 1000):
        with pytest.raises(ValueError, match="threads"):
            Transcriber(tiny_bundle, threads=n)


def test_the_api_takes_integer_pcm_and_rate_pairs_and_refuses_the_rest(tiny_bundle):
    x = tone(1.0)
    pcm = (x * 32767).astype(np.int16)
    assert np.allclose(as_waveform(pcm), x, atol=1e-3)  # scaled, not 32767 × too loud
    at8k = as_waveform((x[::2], 8000))
    assert abs(len(at8k) - len(x)) < 20
    tr = Transcriber(tiny_bundle)
    for bad in ([0.1, 0.2], None, 3):
        with pytest.raises(AudioError, match="cannot transcribe"):
            tr.transcribe(bad)
    text, tokens = tr.transcribe(pcm, options=DecodeOptions(max_new_tokens=1000, temperatures=(0.0,)), return_tokens=True)
    assert all(len(t) <= 448 - 4 for t in tokens) and text == " ".join(x for x in (tr.text(t) for t in tokens) if x)  # capped


def test_opposite_phase_stereo_is_not_mixed_to_silence(tmp_path):
    x = tone(0.5)
    path = tmp_path / "st.wav"
    sf.write(path, np.stack([x, -x], axis=1), 16000)
    y = load_audio(path)
    assert np.sqrt(np.mean(y**2)) > 0.1


def test_a_truncated_wav_is_read_with_a_warning(tmp_path, caplog):
    path = tmp_path / "t.wav"
    sf.write(path, tone(2.0), 16000)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    y = load_audio(path)
    assert 0.5 < len(y) / 16000 < 1.5 and "cut short" in caplog.text


def test_a_batch_goes_on_after_a_bad_file(tiny_bundle, clips, tmp_path, capsys):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    rc = main(["transcribe", "--bundle", str(tiny_bundle), str(bad), str(clips[0]["path"]), "--max-new-tokens", "3"])
    out, err = capsys.readouterr()
    assert rc == 1 and "bad.wav" in err and str(clips[0]["path"]) in out


def test_normalize_keeps_every_line(monkeypatch, capsys):
    import io
    import sys

    raw = "हाँ, 2\n".encode() + b"\xff\xfe\xfa\n" + ("1" * 5000 + "\n").encode() + "ठीक 5\n".encode()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(raw)))
    assert main(["normalize"]) == 1
    out = capsys.readouterr()
    lines = out.out.split("\n")
    assert lines[0] == "हाँ दो" and lines[1] == "" and lines[2].startswith("एक एक") and lines[3] == "ठीक पाँच"
    assert "line 2" in out.err
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("ठीक 5\n".encode("utf-16"))))
    assert main(["normalize"]) == 0
    assert capsys.readouterr().out == "ठीक पाँच\n"


def test_verify_checks_what_the_manifest_says(tiny_bundle, tmp_path):
    b = _edited(tiny_bundle, tmp_path, lambda m: m.__setitem__("language", "xx"))
    with pytest.raises(BundleError, match="language"):
        verify_bundle(b)
