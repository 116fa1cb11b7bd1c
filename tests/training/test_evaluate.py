import csv
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from whisper_edge.cli import main
from whisper_edge.training.data import DataError, load_speech_dataset


def test_audiofolder_loads_with_columns(audiofolder):
    ds = load_speech_dataset(audiofolder, "train")
    assert {"audio", "sentence"} <= set(ds.column_names) and len(ds) == 4


def test_common_voice_layout(clips, tmp_path):
    root = tmp_path / "cv-corpus-hi"
    (root / "clips").mkdir(parents=True)
    hindi = [c for c in clips if c["language"] == "hi"]
    for split in ("train", "dev", "test"):
        with open(root / f"{split}.tsv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f, delimiter="\t")
            w.writerow(["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", "accents"])
            for i, c in enumerate(hindi):
                # Common Voice ships MP3; here FLAC at 48 kHz stereo exercises the same decode path
                name = f"common_voice_hi_{split}_{i}.flac"
                wav, rate = sf.read(c["path"])
                sf.write(root / "clips" / name, np.stack([wav, wav], 1), rate)
                w.writerow([f"speaker{i}", name, c["text"], 2, 0, "", "", ""])
    ds = load_speech_dataset(root, "validation")
    assert len(ds) == 3 and ds[0]["sentence"] == hindi[0]["text"]
    with pytest.raises(DataError, match="other.tsv"):
        load_speech_dataset(root, "other")


def test_manifest_and_missing_column(audiofolder, tmp_path):
    good = tmp_path / "m.tsv"
    good.write_text(f"path\ttext\n{audiofolder}/hi0.wav\tनमस्ते\n", encoding="utf-8")
    assert load_speech_dataset(good)[0]["sentence"] == "नमस्ते"
    bad = tmp_path / "bad.csv"
    bad.write_text("path,words\nx.wav,y\n")
    with pytest.raises(DataError, match="transcript column"):
        load_speech_dataset(bad)


def test_empty_and_unknown_sources(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "metadata.csv").write_text("file_name,sentence\n")
    with pytest.raises(DataError, match="no rows"):
        load_speech_dataset(tmp_path / "empty")
    (tmp_path / "plain").mkdir()
    with pytest.raises(DataError, match="not a dataset folder"):
        load_speech_dataset(tmp_path / "plain")
    with pytest.raises(DataError, match="no such file"):
        load_speech_dataset(tmp_path / "nowhere")


@pytest.mark.slow
def test_eval_cli_reports_three_normalizers_and_skips_corrupt(whisper_base, audiofolder, tmp_path, capsys):
    out = tmp_path / "r.json"
    assert main(["eval", "--model", str(whisper_base), "--data", str(audiofolder), "--batch-size", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    printed = capsys.readouterr().out
    assert "hindi (ours)" in printed and "basic (transformers)" in printed
    assert set(report["by_normalizer"]) == {"hindi", "basic", "raw"}
    assert report["utterances"] == 3 and report["skipped"] == 1
    assert "broken.wav" in report["skipped_detail"][0]["path"]
    assert all(r["hyp"] for r in report["per_utterance"])  # the model produced text for every clip
    assert report["wer"] == report["by_normalizer"]["hindi"]["wer"] > 0
    assert report["rtf"] > 0


def test_eval_cli_bad_model_folder_is_clear(tmp_path, audiofolder, capsys):
    assert main(["eval", "--model", str(tmp_path), "--data", str(audiofolder)]) == 2
    assert "no config.json" in capsys.readouterr().err


def test_eval_noisy_copy_same_utterances_and_refused_against_a_clean_report(tiny_model, speech_corpus, tmp_path,
                                                                            capsys, monkeypatch):
    import whisper_edge.training.data as data

    calls = []
    real = data.noisy_copy
    monkeypatch.setattr(data, "noisy_copy", lambda ds, **kw: calls.append(len(ds)) or real(ds, **kw))
    clean, noisy = tmp_path / "clean.json", tmp_path / "noisy.json"
    common = ["eval", "--model", str(tiny_model), "--data", str(speech_corpus), "--split", "validation", "--limit", "2"]
    assert main(common + ["--out", str(clean)]) == 0 and calls == []
    assert main(common + ["--noisy", "--out", str(noisy)]) == 0
    assert calls == [2]  # only the evaluated rows get the effects
    assert "(noisy copy)" in capsys.readouterr().out
    rc, rn = json.loads(clean.read_text()), json.loads(noisy.read_text())
    assert (rc["noisy"], rn["noisy"]) == (False, True)
    assert [(r["id"], r["ref"]) for r in rn["per_utterance"]] == [(r["id"], r["ref"]) for r in rc["per_utterance"]]
    assert rn["audio_seconds"] == pytest.approx(rc["audio_seconds"], rel=0.01)  # the copy keeps each clip's length
    # the noisy copy's clips carry their effects: WER by condition (noise band, reverb, telephone); clean clips do not
    assert "by_condition" not in rc and sum(rn["by_condition"][c]["utterances"] for c in rn["by_condition"]
                                            if c.startswith("noise ")) == rn["utterances"]
    # a noisy report against a clean one (same ids, different audio) is refused before anything is evaluated
    assert main(common + ["--noisy", "--against", str(clean)]) == 2
    assert "noisy copy" in capsys.readouterr().err and calls == [2]
    assert main(common + ["--noisy", "--against", str(noisy)]) == 0  # the same draw: a difference of zero
    assert "+0.00 WER points" in capsys.readouterr().out
    # a split that is already noisy (test_noisy) is not noised a second time
    assert main(["eval", "--model", str(tiny_model), "--data", str(speech_corpus), "--split", "test_noisy", "--noisy",
                 "--limit", "2"]) == 2
    assert "already carries noise" in capsys.readouterr().err and calls == [2, 2]  # refused before the copy


def test_eval_long_copy_joins_clips_as_test_long_and_is_compared_only_with_its_kind(tiny_model, speech_corpus, tmp_path,
                                                                                    capsys):
    from whisper_edge.training.data import load_speech_dataset, long_copy, row_audio

    ds = load_speech_dataset(speech_corpus, "test")
    copy = long_copy(ds, max_seconds=6.0)  # the tiny model's window
    assert copy["id"] == long_copy(ds, max_seconds=6.0)["id"] and len(copy) >= 1  # seeded: the same windows every time
    by_suffix = {r["id"].rsplit("-", 1)[-1]: r for r in ds}
    used = []
    for row in copy:
        parts = [by_suffix[k] for k in row["id"].split("-")[1:]]
        used += row["id"].split("-")[1:]
        assert 2 <= len(parts) <= 4 and row["sentence"] == " ".join(p["sentence"] for p in parts)
        n = len(row_audio(row["audio"]))
        assert sum(len(row_audio(p["audio"])) for p in parts) + 0.3 * 16000 * (len(parts) - 1) <= n <= 6 * 16000
    assert len(used) == len(set(used))  # a clip is in one window at most
    common = ["eval", "--model", str(tiny_model), "--data", str(speech_corpus), "--split", "test", "--max-new-tokens", "8"]
    plain, long = tmp_path / "plain.json", tmp_path / "long.json"
    assert main(common + ["--out", str(plain)]) == 0 and main(common + ["--long", "--out", str(long)]) == 0
    assert "(long-window copy)" in capsys.readouterr().out
    report = json.loads(long.read_text())
    assert report["long"] and report["utterances"] == len(copy) and "by_condition" not in report
    assert main(common + ["--long", "--against", str(plain)]) == 2  # same ids nowhere, different audio: refused
    assert "the long-window copy" in capsys.readouterr().err
    assert main(common + ["--long", "--noisy"]) == 2 and "choose one" in capsys.readouterr().err
    assert main(common[:-4] + ["--split", "test_long", "--long"]) == 2  # already several sentences per window
    assert "already" in capsys.readouterr().err


def test_eval_batches_by_length_and_reports_in_split_order(tiny_model, speech_corpus):
    """Clips are decoded longest first in batches; each utterance's hypothesis is the one it gets alone, and the
    report keeps the split's order (a mismatch between the sorted work and the rows would pair wrong references)."""
    from whisper_edge.training.data import load_speech_dataset
    from whisper_edge.training.evaluate import EvalOptions, evaluate_model, load_model

    model, processor = load_model(tiny_model, device="cpu")
    ds = load_speech_dataset(speech_corpus, "test")
    alone = evaluate_model(model, processor, ds, EvalOptions(batch_size=1, max_new_tokens=8))
    batched = evaluate_model(model, processor, ds, EvalOptions(batch_size=4, max_new_tokens=8))
    seconds = [r["seconds"] for r in batched["per_utterance"]]
    assert len(set(seconds)) > 1 and seconds != sorted(seconds, reverse=True)  # the split is not in length order
    assert [r["row"] for r in batched["per_utterance"]] == list(range(len(ds)))
    assert [r["ref"] for r in batched["per_utterance"]] == ds["sentence"]
    assert [(r["id"], r["hyp"]) for r in batched["per_utterance"]] == [(r["id"], r["hyp"]) for r in alone["per_utterance"]]
