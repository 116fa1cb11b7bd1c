import numpy as np
import pytest
import soundfile as sf

from whisper_edge.runtime.audio import AudioError, load_audio, to_mono_16k

from ..conftest import tone


def test_stereo_44k_becomes_mono_16k(tmp_path):
    x = tone(1.0, 44100)
    path = tmp_path / "s.flac"
    sf.write(path, np.stack([x, x], axis=1), 44100)
    y = load_audio(path)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 16000) <= 2
    # the tone survives resampling: dominant frequency stays at 440 Hz
    spectrum = np.abs(np.fft.rfft(y))
    assert abs(np.argmax(spectrum) * 16000 / len(y) - 440) < 3


def test_bytes_and_int_pcm(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, (tone(0.5) * 32767).astype(np.int16), 16000, subtype="PCM_16")
    assert np.allclose(load_audio(path.read_bytes()), load_audio(path))
    assert to_mono_16k(np.array([0, 16384, -16384], np.int16), 16000).max() == pytest.approx(0.5, abs=1e-3)


@pytest.mark.parametrize(
    "make,match",
    [
        (lambda p: p.write_bytes(b"RIFF1234garbage"), "cannot decode audio"),
        (lambda p: sf.write(p, np.zeros(0, np.float32), 16000), "empty"),
        (lambda p: None, "no such audio file"),
    ],
    ids=["corrupt", "empty", "missing"],
)
def test_bad_audio_names_the_file(tmp_path, make, match):
    path = tmp_path / "bad.wav"
    make(path)
    with pytest.raises(AudioError, match=match) as err:
        load_audio(path)
    assert "bad.wav" in str(err.value)


def test_non_finite_samples_rejected():
    with pytest.raises(AudioError, match="NaN"):
        to_mono_16k(np.array([0.0, np.nan], np.float32), 16000)
