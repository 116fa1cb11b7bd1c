"""Shared fixtures: synthesized Hindi and English clips, and the bundled Whisper-base imported once."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pytest

HINDI = [
    "मेरा भाई शहर के अस्पताल में काम करता है।",
    "आज मौसम बहुत अच्छा है।",
    "हम कल सुबह दिल्ली जाएँगे।",
]
ENGLISH = [
    "The quick brown fox jumps over the lazy dog.",
    "Please call me tomorrow morning.",
]


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory) -> Path:
    """A private whisper-edge cache for the test session (never the user's ~/.cache)."""
    path = tmp_path_factory.mktemp("we-cache")
    os.environ["WHISPER_EDGE_CACHE"] = str(path)
    return path


@pytest.fixture(scope="session")
def clips(tmp_path_factory) -> list[dict]:
    """espeak-ng clips: 3 Hindi, 2 English, written as 22.05 kHz WAV files."""
    import soundfile as sf

    from whisper_edge.training.corpus.espeak import espeak_synthesize

    out = tmp_path_factory.mktemp("clips")
    items = []
    for lang, voice, texts in (("hi", "hi", HINDI), ("en", "en-us", ENGLISH)):
        for i, text in enumerate(texts):
            wav, rate = espeak_synthesize(text, voice)
            path = out / f"{lang}{i}.wav"
            sf.write(path, wav, rate)
            items.append({"path": path, "text": text, "language": lang})
    return items


@pytest.fixture(scope="session")
def audiofolder(clips, tmp_path_factory) -> Path:
    """An audiofolder of the Hindi clips plus one corrupt file."""
    import shutil

    root = tmp_path_factory.mktemp("audiofolder")
    with open(root / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["file_name", "sentence"])
        for c in clips:
            if c["language"] == "hi":
                shutil.copy(c["path"], root / c["path"].name)
                w.writerow([c["path"].name, c["text"]])
        (root / "broken.wav").write_bytes(b"RIFF\x00\x00not really a wave file")
        w.writerow(["broken.wav", "यह फ़ाइल टूटी है"])
    return root


@pytest.fixture(scope="session")
def whisper_base(cache_dir, tmp_path_factory) -> Path:
    """The bundled Whisper-base as a Hugging Face folder (converted once per session)."""
    from whisper_edge.training.model_import import import_model

    return import_model("bundled-base", tmp_path_factory.mktemp("models") / "whisper-base", cache=cache_dir)


def tone(seconds: float, rate: int = 16000, freq: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


@pytest.fixture(scope="session")
def tiny_model(whisper_base, tmp_path_factory) -> Path:
    """A random 2+2-layer Whisper (d_model 128, 2 heads of 64, FFN 256, 6-s audio context) with the real processor."""
    from whisper_edge.training.tiny import tiny_whisper

    return tiny_whisper(whisper_base, tmp_path_factory.mktemp("models") / "tiny", audio_ctx=300)


@pytest.fixture(scope="session")
def speech_corpus(tmp_path_factory) -> Path:
    """A 24-utterance espeak-ng corpus with train/validation/test splits."""
    from whisper_edge.training.corpus.build import BuildOptions, build_corpus

    out = tmp_path_factory.mktemp("speech") / "corpus"
    build_corpus(BuildOptions(out=out, utterances=24, engines=("espeak",), jobs=2, test_share=0.25,
                              validation_share=0.17, augment="none"))
    return out


@pytest.fixture(scope="session")
def tiny_pruned(tiny_model, tmp_path_factory) -> Path:
    """The tiny model with a layer-by-layer mix of removed heads and channels (one layer head-less)."""
    from whisper_edge.training.architecture import apply_surgery, load_checkpoint, save_checkpoint

    model, processor = load_checkpoint(tiny_model)
    apply_surgery(model, {
        "encoder": [{"heads": [1], "ffn": list(range(0, 256, 2))}, {"heads": [], "ffn": list(range(40))}],
        "decoder": [{"self_heads": [], "cross_heads": [0], "ffn": list(range(100))},
                    {"self_heads": [1], "cross_heads": [0, 1], "ffn": [3, 4]}],
    })
    return save_checkpoint(model, processor, tmp_path_factory.mktemp("models") / "tiny-pruned",
                           generation_config=model.generation_config)


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model, tmp_path_factory) -> Path:
    from whisper_edge.exporter.export import export_bundle

    out = tmp_path_factory.mktemp("bundles") / "tiny"
    export_bundle(tiny_model, out)
    return out


@pytest.fixture
def hold_folder():
    """Start another process that locks a folder as a writer does (runtime/fsutil.py lock_folder) and keeps it
    until killed; the processes are killed at the end of the test."""
    import subprocess
    import sys

    procs = []

    def hold(folder: Path) -> subprocess.Popen:
        code = ("import sys, time; from pathlib import Path; from whisper_edge.runtime.fsutil import lock_folder; "
                "p = Path(sys.argv[1]); p.mkdir(parents=True, exist_ok=True); lock_folder(p, 'run'); "
                "print('held', flush=True); time.sleep(120)")
        proc = subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc

    yield hold
    for proc in procs:
        proc.kill()
        proc.wait()
