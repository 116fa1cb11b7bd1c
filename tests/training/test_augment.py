"""On-the-fly training augmentation (issue 17): seeded, bounded by the window, fields checked by name."""

from __future__ import annotations

import re

import numpy as np
import pytest

from whisper_edge.training.augment import AugmentConfig, augment_clip
from whisper_edge.training.recipes import RecipeError, load_recipe


def test_every_effect_fires_and_a_seed_reproduces_the_draw():
    cfg = load_recipe("dense").augment
    x = (np.random.default_rng(1).standard_normal(16000 * 3) * 0.1).astype(np.float32)
    seen = set()
    for k in range(60):
        y1, n1 = augment_clip(x, cfg, np.random.default_rng(k), lambda: [x[:8000], x], max_samples=16000 * 10)
        y2, n2 = augment_clip(x, cfg, np.random.default_rng(k), lambda: [x[:8000], x], max_samples=16000 * 10)
        assert n1 == n2 and np.array_equal(y1, y2)
        assert np.max(np.abs(y1)) <= 1.0 and y1.dtype == np.float32
        seen |= {re.match(r"[a-z]+", name).group() for name in n1}
    assert {"speed", "reverb", "noise", "babble", "gain", "telephone", "lowpass"} <= seen


def test_speed_never_outgrows_the_window():
    cfg = AugmentConfig(p_speed=1.0, speed_min=0.9, speed_max=0.9)
    x = np.zeros(16000 * 10, np.float32)
    y, names = augment_clip(x, cfg, np.random.default_rng(0), max_samples=16000 * 10)
    assert len(y) == len(x) and names == []
    y, names = augment_clip(x[:16000], cfg, np.random.default_rng(0), max_samples=16000 * 10)
    assert len(y) > 16000 and names == ["speed0.90"]


@pytest.mark.parametrize("semitones", [2.0, -3.0])
def test_pitch_shift_moves_the_pitch_and_keeps_the_tempo(semitones):
    from whisper_edge.training.corpus.augment import change_pitch, time_stretch

    t = np.arange(16000 * 2) / 16000
    x = (0.5 * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    y = change_pitch(x, semitones)
    peak = np.fft.rfftfreq(len(y), 1 / 16000)[np.argmax(np.abs(np.fft.rfft(y)))]
    assert len(y) == len(x) and abs(peak - 200 * 2 ** (semitones / 12)) < 1.0  # 0.5-Hz bins
    assert abs(np.std(y[4000:-4000]) / np.std(x) - 1) < 0.2  # the level is kept
    slow = time_stretch(x, 0.8)  # tempo alone: longer, same pitch
    assert len(slow) == 40000 and np.argmax(np.abs(np.fft.rfft(slow))) * 16000 / len(slow) == pytest.approx(200, abs=1)


def test_pitch_is_drawn_only_when_on():
    x = (np.random.default_rng(1).standard_normal(16000 * 2) * 0.1).astype(np.float32)
    on = AugmentConfig(p_pitch=1.0, pitch_min=-1.0, pitch_max=1.0, p_noise=1.0)
    y, names = augment_clip(x, on, np.random.default_rng(0))
    assert names[0].startswith("pitch") and -1.0 <= float(names[0][5:-2]) <= 1.0 and len(y) == len(x)
    # off: the random stream is the one recipes without pitch always had (a resumed run reproduces its draws)
    off_a = augment_clip(x, AugmentConfig(p_noise=1.0), np.random.default_rng(0))
    off_b = augment_clip(x, AugmentConfig(p_noise=1.0, pitch_min=-5.0), np.random.default_rng(0))
    assert off_a[1] == off_b[1] and np.array_equal(off_a[0], off_b[0])
    with pytest.raises(ValueError, match="augment.pitch_min"):
        AugmentConfig(pitch_min=3.0, pitch_max=1.0)


def test_out_of_range_settings_name_the_field():
    with pytest.raises(RecipeError, match="augment.p_noise"):
        load_recipe("dense", {"augment.p_noise": 1.5})
    with pytest.raises(RecipeError, match="augment.snr_min"):
        load_recipe("dense", {"augment.snr_min": 30.0, "augment.snr_max": 10.0})
    with pytest.raises(RecipeError, match="augment.p_nois"):
        load_recipe("dense", {"augment.p_nois": 0.5})
    with pytest.raises(RecipeError, match="augment.distance_min"):
        load_recipe("dense", {"augment.distance_min": 4.0, "augment.distance_max": 1.0})


def test_concatenated_windows_join_their_transcripts(speech_corpus):
    from whisper_edge.training.batches import SpeechDataset
    from whisper_edge.training.data import load_speech_dataset

    ds = load_speech_dataset(speech_corpus, "train")
    cfg = AugmentConfig(p_concat=1.0)
    data = SpeechDataset(ds, list(range(len(ds))), cfg, seed=0, max_samples=16000 * 30)
    wav, text = data[0]
    assert text.startswith(ds[0]["sentence"]) and len(text) > len(ds[0]["sentence"])
    assert len(wav) <= 16000 * 30
    plain = SpeechDataset(ds, list(range(len(ds))), AugmentConfig(), seed=0)
    assert plain[0][1] == ds[0]["sentence"]


def test_nonspeech_windows_are_labelled_nocaptions(speech_corpus, tiny_model):
    from whisper_edge.training.architecture import load_checkpoint
    from whisper_edge.training.batches import SpeechCollator, SpeechDataset
    from whisper_edge.training.data import load_speech_dataset

    ds = load_speech_dataset(speech_corpus, "train")
    data = SpeechDataset(ds, list(range(len(ds))), AugmentConfig(p_nospeech=1.0), seed=0, max_samples=16000 * 6,
                         with_rows=True)
    items = [data[i] for i in range(6)]
    assert all(t == "" and row == -1 and 16000 <= len(w) <= 16000 * 6 for w, t, row in items)  # no teacher target
    assert all(np.sqrt(np.mean(w ** 2)) < 0.11 for w, _, _ in items)
    _, processor = load_checkpoint(tiny_model)
    batch = SpeechCollator(processor, 300, "hi", 40)(items[:2] + [(items[2][0], ds[0]["sentence"], 0)])
    nocaptions = processor.tokenizer.convert_tokens_to_ids("<|nocaptions|>")
    assert batch["labels"][0, :2].tolist() == [nocaptions, processor.tokenizer.eos_token_id]
    assert (batch["labels"][0, 2:] == -100).all() and batch["labels"][2, 0] != nocaptions
    with pytest.raises(ValueError, match="augment.p_nospeech"):
        AugmentConfig(p_nospeech=1.5)


def test_long_recordings_join_test_utterances_into_an_audiofolder(speech_corpus, tmp_path):
    import csv

    import soundfile as sf

    from whisper_edge.cli import main
    from whisper_edge.runtime.bench import load_clips

    out = tmp_path / "long"
    assert main(["data", "long", "--corpus", str(speech_corpus), "--out", str(out), "--count", "2", "--seconds", "8"]) == 0
    rows = list(csv.DictReader(open(out / "metadata.csv", encoding="utf-8")))
    assert 1 <= len(rows) <= 2 and all(len(r["sentence"].split()) > 3 for r in rows)
    assert sf.info(out / rows[0]["file_name"]).duration > 2
    assert len(load_clips(out)) == len(rows)  # the torch-free bench reads it
    import json

    truth = json.loads((out / "utterances.json").read_text(encoding="utf-8"))[rows[0]["file_name"]]
    assert " ".join(u["text"] for u in truth) == rows[0]["sentence"]  # one span per joined utterance, in order
    assert all(0 <= a["start"] < a["end"] <= b["start"] for a, b in zip(truth, truth[1:]))
    assert truth[-1]["end"] <= sf.info(out / rows[0]["file_name"]).duration + 1e-3
    assert main(["data", "long", "--corpus", str(speech_corpus), "--out", str(out)]) == 2  # exists: --overwrite


def _folder(tmp_path, name):
    import soundfile as sf

    d = tmp_path / name
    (d / "sub").mkdir(parents=True)
    rng = np.random.default_rng(0)
    sf.write(d / "fan.wav", (rng.standard_normal(8000 * 3) * 0.1).astype(np.float32), 8000)  # resampled to 16 kHz
    sf.write(d / "sub" / "hall.flac", np.stack([rng.standard_normal(16000) * 0.1] * 2, axis=1).astype(np.float32), 16000)
    (d / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (d / "notes.txt").write_text("not audio")  # not an audio suffix: not read, not reported
    return d


def test_user_noise_and_rir_folders_skip_unreadable_files_by_name(tmp_path, caplog):
    from whisper_edge.training.sounds import load_sound_folder

    noise, rir = _folder(tmp_path, "noise"), _folder(tmp_path, "rir")
    cfg = load_recipe("dense", {"augment.noise_dir": str(noise), "augment.rir_dir": str(rir), "augment.p_noise_file": 1.0,
                                "augment.p_rir_file": 1.0, "augment.p_noise": 1.0, "augment.p_reverb": 1.0,
                                "augment.p_speed": 0.0}).augment
    load_sound_folder.cache_clear()
    with caplog.at_level("WARNING", logger="whisper_edge"):
        sounds = cfg.sounds("noise_dir")
    assert len(sounds) == 2 and all(s.dtype == np.float32 for s in sounds)
    assert len(sounds[0]) == 16000 * 3  # 8 kHz → 16 kHz
    skipped = [r.getMessage() for r in caplog.records]
    assert len(skipped) == 1 and "broken.wav" in skipped[0] and "notes.txt" not in " ".join(skipped)
    x = (np.random.default_rng(1).standard_normal(16000 * 2) * 0.1).astype(np.float32)
    y, names = augment_clip(x, cfg, np.random.default_rng(3), max_samples=16000 * 10)
    assert any(n.startswith("rirfile") for n in names) and any(n.startswith("noisefile") for n in names)
    assert len(y) == len(x) and not np.allclose(y, x) and np.max(np.abs(y)) <= 1.0


def test_user_folders_that_cannot_serve_name_the_field(tmp_path):
    with pytest.raises(RecipeError, match="augment.noise_dir.*not a folder"):
        load_recipe("dense", {"augment.noise_dir": str(tmp_path / "missing")})
    (tmp_path / "empty").mkdir()
    with pytest.raises(RecipeError, match="augment.rir_dir.*no audio files"):
        load_recipe("dense", {"augment.rir_dir": str(tmp_path / "empty")})
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.wav").write_bytes(b"not a wav")
    from whisper_edge.training.sounds import load_sound_folder

    with pytest.raises(ValueError, match="augment.noise_dir: none of the audio files"):
        load_sound_folder(str(bad), "noise_dir")


def test_effect_labels_map_to_conditions_and_every_label_written_parses():
    from whisper_edge.training.corpus.augment import CONDITIONS, HARD, augment, conditions

    assert conditions("reverb0.79s+telephone+noise4dB") == ["noise 4–6 dB", "reverb", "telephone"]
    assert conditions("noise0dB") == ["noise 0–3 dB", "no reverb"]
    assert conditions("babble10dB+gain-3dB") == ["noise 7–10 dB", "no reverb"]
    assert conditions("rirfile1+noisefile2-25dB") == ["noise > 10 dB", "reverb"]
    assert conditions("clean") == conditions("") == conditions(None) == ["no noise", "no reverb"]
    assert conditions("reverb0.50s@-12dB+noise4dB") == ["noise 4–6 dB", "reverb", "reverb, DRR < −10 dB"]
    assert conditions("reverb0.50s@3dB")[1:] == ["reverb", "reverb, DRR ≥ 0 dB"]
    # the labels the corpus's own effects write parse to a noise band (a format change would read as "no noise")
    rng = np.random.default_rng(0)
    for _ in range(20):
        _, applied = augment(np.random.default_rng(1).standard_normal(16000).astype(np.float32) * 0.1, HARD, rng)
        found = conditions("+".join(applied))
        assert found[0].startswith("noise ") and set(found) <= set(CONDITIONS)
    hits = 0
    for _ in range(40):  # and the in-training effects (training/augment.py) with noise always on
        _, applied = augment_clip(np.full(16000, 0.05, np.float32), AugmentConfig(p_noise=1.0, p_reverb=0.5), rng)
        hits += conditions("+".join(applied))[0] != "no noise"
    assert hits == 40


def test_synthetic_rooms_have_the_direct_to_reverberant_ratio_they_are_drawn_with():
    from whisper_edge.training.corpus.augment import HARD, add_reverb, augment, conditions, room_drr_db

    x = np.zeros(24000)
    x[100] = 1.0
    for drr in (-20.0, -5.0, 0.0, 10.0):
        y = add_reverb(x, np.random.default_rng(0), 0.6, drr)
        assert 10 * np.log10(y[100] ** 2 / np.sum(y[101:] ** 2)) == pytest.approx(drr, abs=0.01)
    rng = np.random.default_rng(0)
    # Sabine: a farther talker and a livelier room lower the ratio; the bounds follow from the volume range
    near = [room_drr_db(rng, 0.4, (0.5, 0.5)) for _ in range(200)]
    far = [room_drr_db(rng, 0.9, (4.0, 4.0)) for _ in range(200)]
    assert max(far) < min(near) and min(far) >= 20 * np.log10(0.057 * np.sqrt(30 / 0.9) / 4) - 1e-9
    # test_noisy's reverberant clips say their ratio, and it spans the three bands
    bands = set()
    for _ in range(200):
        _, applied = augment(np.random.default_rng(1).standard_normal(8000).astype(np.float32) * 0.1, HARD, rng)
        bands |= {c for c in conditions("+".join(applied)) if c.startswith("reverb, DRR")}
    assert len(bands) == 3


def test_oversample_repeats_the_matching_clips_and_names_what_is_wrong():
    """recipe field oversample {"column=value": factor}: the matching rows drawn factor times as often; a column or a
    value the training split lacks, or a malformed setting, is an error that says what is there."""
    import datasets

    from whisper_edge.training.batches import oversampled

    ds = datasets.Dataset.from_dict({"sentence": ["a"] * 6, "engine": ["kokoro", "espeak"] * 3})
    rows = [0, 1, 2, 3, 5]  # row 4 was left out (unreadable, or longer than the window)
    assert oversampled(ds, rows, None) == rows
    got = oversampled(ds, rows, {"engine=kokoro": 3})
    assert sorted(got) == [0, 0, 0, 1, 2, 2, 2, 3, 5]  # kokoro rows 0 and 2 three times; row 4 stays out
    with pytest.raises(ValueError, match="no column 'voice'; its columns: engine"):
        oversampled(ds, rows, {"voice=af": 2})
    with pytest.raises(ValueError, match="no training clip has engine = 'piper'; its values: espeak, kokoro"):
        oversampled(ds, rows, {"engine=piper": 2})
    for bad in ({"engine": 2}, {"engine=kokoro": 0}, {"engine=kokoro": 1.5}, ["engine=kokoro"]):
        with pytest.raises(RecipeError, match="'oversample'"):
            load_recipe("dense", {"oversample": bad})
    assert load_recipe("dense", {"oversample": {"engine=kokoro": 3}}).oversample == {"engine=kokoro": 3}
