"""`bundle tokens` / `bundle parity`: the arm64 check's comparison (scripts/arm64-check.sh), run here on one machine."""

import copy
import csv
import json
import shutil

import pytest

from whisper_edge.cli import main


@pytest.fixture(scope="module")
def good_clips(audiofolder, tmp_path_factory):
    """The audiofolder without its broken file."""
    out = tmp_path_factory.mktemp("clips")
    with open(audiofolder / "metadata.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["file_name"] != "broken.wav"]
    for r in rows:
        shutil.copy(audiofolder / r["file_name"], out / r["file_name"])
    with open(out / "metadata.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, ["file_name", "sentence"])
        w.writeheader()
        w.writerows(rows)
    return out


def test_a_record_compared_with_itself_passes_and_a_changed_token_fails(tiny_bundle, good_clips, tmp_path, capsys):
    rec = tmp_path / "x86.json"
    assert main(["bundle", "tokens", str(tiny_bundle), "--data", str(good_clips), "--out", str(rec), "--threads", "1"]) == 0
    r = json.loads(rec.read_text())
    n = len(r["clips"])
    assert n >= 2 and r["machine"] and r["quantization"] == "none"
    assert all(c["tokens"] and all(isinstance(t, int) for s in c["tokens"] for t in s) for c in r["clips"])

    assert main(["bundle", "parity", str(rec), str(rec), "--out", str(tmp_path / "p.json")]) == 0
    p = json.loads((tmp_path / "p.json").read_text())
    assert p["passed"] and p["identical_tokens"] == n and p["wer_diff"] == 0

    # one token off on the "other machine": an fp32 bundle must decode identically, so parity fails and names the clip
    other = copy.deepcopy(r)
    seg = other["clips"][1]["tokens"][0]
    seg[-1] = seg[-1] + 1
    (tmp_path / "arm.json").write_text(json.dumps(other))
    assert main(["bundle", "parity", str(rec), str(tmp_path / "arm.json")]) == 1
    assert f"{n - 1}/{n} clips with identical tokens" in capsys.readouterr().out
    from whisper_edge.runtime.parity import compare

    res = compare(r, other)
    assert not res["passed"] and res["differing"] == [r["clips"][1]["id"]]

    # a quantized bundle is judged by WER: the same changed token (same text) passes within the bound
    r["quantization"] = other["quantization"] = "int8"
    assert compare(r, other)["passed"]


def test_records_of_other_clips_or_another_bundle_are_refused(tiny_bundle, good_clips, tmp_path):
    from whisper_edge.runtime.parity import compare, record

    r = record(tiny_bundle, good_clips, tmp_path / "a.json", limit=2)
    fewer = copy.deepcopy(r)
    fewer["clips"] = fewer["clips"][:1]
    with pytest.raises(ValueError, match="different clips"):
        compare(r, fewer)
    other = copy.deepcopy(r)
    other["files_sha256"] = dict(other["files_sha256"], **{"decoder.onnx": "0" * 64})
    with pytest.raises(ValueError, match="different bundles"):
        compare(r, other)


def test_data_clips_writes_an_audiofolder_from_a_corpus_split(speech_corpus, tmp_path, capsys):
    out = tmp_path / "clips"
    assert main(["data", "clips", "--corpus", str(speech_corpus), "--split", "test", "--limit", "3", "--out", str(out)]) == 0
    with open(out / "metadata.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all((out / r["file_name"]).stat().st_size > 1000 and r["sentence"] for r in rows)
    assert main(["data", "clips", "--corpus", str(speech_corpus), "--out", str(out)]) != 0
    assert "--overwrite" in capsys.readouterr().err and len(list(out.glob("*.wav"))) == 3
