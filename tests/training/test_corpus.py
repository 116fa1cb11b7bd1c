import json
from pathlib import Path

import pytest

from whisper_edge.training.corpus import build as build_mod
from whisper_edge.training.corpus.build import BuildOptions, build_corpus
from whisper_edge.training.corpus.text import build_sentences, clean_line
from whisper_edge.training.data import load_speech_dataset


def test_clean_line_handles_digits_latin_and_empty():
    assert clean_line("मेरे पास 25 किताबें हैं।") == ("मेरे पास पच्चीस किताबें हैं।", None)
    assert clean_line("मुझे WhatsApp पसंद है") == (None, "latin")
    assert clean_line("   ") == (None, "empty")
    assert clean_line("12345") == ("बारह हज़ार तीन सौ पैंतालीस", None)
    assert clean_line("।।।।।।।।।।") == (None, "no devanagari letters")


def test_sentences_are_unique_and_deterministic():
    a, b = build_sentences(500, seed=3), build_sentences(500, seed=3)
    assert a.sentences == b.sentences and len(set(a.sentences)) == 500
    assert build_sentences(500, seed=4).sentences != a.sentences
    assert a.sources["handwritten"] > 100  # the natural sentences are always in


def test_no_word_starts_with_a_vowel_sign():
    """Faker's hi_IN names include some typed in visual order (``िनशा``): repaired, so no sentence has a word a voice
    cannot read and a transcript never matches."""
    from whisper_edge.training.corpus.text import repair_word

    assert repair_word("िनशा") == "निशा" and repair_word("िकशोरी") == "किशोरी" and repair_word("राहुल") == "राहुल"
    assert repair_word("ाअ") == ""
    signs = {chr(c) for c in range(0x093A, 0x0950)} | {"\u0900", "\u0901", "\u0902", "\u0903"}
    words = [w for s in build_sentences(3000, seed=0).sentences for w in s.split()]
    assert words and not [w for w in words if w[0] in signs]


def _opts(out: Path, **kw) -> BuildOptions:
    return BuildOptions(out=out, **({"utterances": 30, "engines": ("espeak",), "jobs": 2, "test_share": 0.3,
                                     "validation_share": 0.1} | kw))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    text = out.parent / "user.txt"
    text.write_text("।।।।।।।।।।।।\nयह 3 शब्द हैं\nHello दुनिया\n", encoding="utf-8")
    summary = build_corpus(_opts(out, text=text))
    return out, summary


def test_build_splits_by_sentence_and_holds_voices_out(corpus):
    out, summary = corpus
    train = load_speech_dataset(out, "train")
    test = load_speech_dataset(out, "test")
    clean = load_speech_dataset(out, "test_clean")
    assert not set(train["sentence"]) & set(test["sentence"])
    assert summary["test_sentences_in_train"] == 0
    assert set(test["voice_group"]) == {"seen", "unseen"}
    assert set(train["voice_group"]) == {"seen"}
    assert not set(train["voice"]) & set(build_mod.VOICES["espeak"]["unseen"])
    assert clean["id"] == test["id"] and set(clean["augment"]) == {"clean"}
    assert (out / "README.md").read_text().count("| test |") == 1


def test_unspeakable_and_latin_lines_are_dropped_and_counted(corpus):
    _, summary = corpus
    assert summary["dropped"]["text"].get("user:user.txt: latin") == 1
    assert summary["dropped"]["text"].get("user:user.txt: no devanagari letters") == 1  # a line of dandas


@pytest.mark.parametrize("seconds,reason", [(0.0, "empty audio"), (40.0, "implausible duration")])
def test_empty_or_runaway_synthesis_is_dropped(tmp_path, monkeypatch, seconds, reason):
    import numpy as np

    from whisper_edge.training.corpus import espeak

    rate = 16000
    monkeypatch.setattr(espeak, "espeak_synthesize",
                        lambda *a, **k: (0.5 * np.ones(int(seconds * rate), np.float32), rate))
    build_mod._init_worker(str(tmp_path))
    item = {"id": "train-00001", "sentence": "आज मौसम बहुत अच्छा है।", "engine": "espeak", "voice": "hi",
            "speed": 160, "pitch": 50}
    uid, why, _ = build_mod._synthesize(item)
    assert uid == "train-00001" and why.startswith(reason)
    assert not list(tmp_path.glob("*.flac"))


def test_build_resumes_after_a_kill_and_matches_a_fresh_build(corpus, tmp_path, monkeypatch):
    fresh_out, _ = corpus
    text = fresh_out.parent / "user.txt"
    out = tmp_path / "resumed"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(build_mod, "_assemble", killed)
    with pytest.raises(KeyboardInterrupt):
        build_corpus(_opts(out, text=text))
    monkeypatch.undo()
    clips = sorted((out / ".build" / "clips").glob("*.flac"))
    assert clips and not (out / "dataset_dict.json").exists()
    for clip in clips[::2]:
        clip.unlink()  # as if the kill came mid-way
    build_corpus(_opts(out, text=text))
    a, b = load_speech_dataset(out, "test"), load_speech_dataset(fresh_out, "test")
    assert a["id"] == b["id"] and a["sentence"] == b["sentence"]
    from whisper_edge.runtime.audio import load_audio

    for x, y in zip(a["audio"], b["audio"]):
        wa, wb = load_audio(x["bytes"]), load_audio(y["bytes"])
        # espeak-ng's Klatt voices mix in random noise for aspiration: same clip, not the same bits
        assert abs(len(wa) - len(wb)) <= 0.02 * len(wb)
    assert not (out / ".build").exists()


def test_a_test_only_build_excludes_an_earlier_corpus(corpus, tmp_path, capsys):
    """`data build --test-only --exclude-corpus A`: an extra test set whose sentences A never spoke (A's train split
    included), with the hard copies beside it and no train or validation split."""
    from whisper_edge.cli import build_parser
    from whisper_edge.data_commands import _cmd_data_build

    first, _ = corpus
    out = tmp_path / "extra"
    args = build_parser().parse_args(["data", "build", "--out", str(out), "--utterances", "20", "--engines", "espeak",
                                      "--jobs", "2", "--augment", "none", "--test-only", "--exclude-corpus", str(first),
                                      "--long-seconds", "7"])
    assert _cmd_data_build(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    long = load_speech_dataset(out, "test_long")  # windows for a model with a 7-s audio window (audio_ctx 350)
    assert len(long) >= 2 and max(long["seconds"]) <= 7.0 and "up to 7 s" in summary["hard_splits"]["test_long"]
    assert summary["dropped"]["text"]["handwritten: in an excluded corpus"] >= 20  # the same seed drew them first
    spoken = {s for name in ("train", "validation", "test") for s in load_speech_dataset(first, name)["sentence"]}
    extra = load_speech_dataset(out, "test")
    assert len(extra) >= 16 and not set(extra["sentence"]) & spoken
    assert sorted(json.loads((out / "dataset_dict.json").read_text())["splits"]) == sorted(summary["splits"]) == \
        ["test", "test_clean", "test_long", "test_noisy"]
    with pytest.raises(ValueError, match="--exclude-corpus .*earlier build"):
        build_corpus(_opts(tmp_path / "other", test_only=True, exclude=(tmp_path / "missing",)))
    with pytest.raises(ValueError, match="--long-seconds .*got 1"):
        _opts(tmp_path / "short", long_seconds=1.0)


def test_a_validation_only_build_is_one_validation_split_of_seen_voices(corpus, tmp_path):
    """`data build --validation-only --exclude-corpus A`: a larger validation set for choosing between recipes, spoken
    like A's validation split (seen voices only, train's augmentation), never a sentence of A; with --test-only refused."""
    from whisper_edge.cli import build_parser
    from whisper_edge.data_commands import _cmd_data_build

    first, _ = corpus
    out = tmp_path / "extra-val"
    args = build_parser().parse_args(["data", "build", "--out", str(out), "--utterances", "20", "--engines", "espeak",
                                      "--jobs", "2", "--validation-only", "--exclude-corpus", str(first)])
    assert _cmd_data_build(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert sorted(json.loads((out / "dataset_dict.json").read_text())["splits"]) == list(summary["splits"]) == ["validation"]
    extra = load_speech_dataset(out, "validation")
    spoken = {s for name in ("train", "validation", "test") for s in load_speech_dataset(first, name)["sentence"]}
    assert len(extra) >= 16 and not set(extra["sentence"]) & spoken
    assert set(extra["voice_group"]) == {"seen"} and set(extra["augment"]) != {"clean"}
    with pytest.raises(ValueError, match="choose one"):
        _opts(tmp_path / "both", test_only=True, validation_only=True)


def test_a_corpus_another_process_is_building_is_refused_before_anything_is_written(tmp_path, hold_folder):
    from whisper_edge.runtime.fsutil import OutputError

    out = tmp_path / "corpus"
    proc = hold_folder(out)
    with pytest.raises(OutputError, match=rf"another whisper-edge process \(pid {proc.pid}\).*another folder"):
        build_corpus(BuildOptions(out=out, utterances=24, engines=("espeak",)))
    assert [p.name for p in out.iterdir()] == [".whisper-edge-lock"]  # no marker, no .build: nothing of ours written


def test_unwritable_output_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="choose a writable --out folder"):
        build_corpus(_opts(blocker / "corpus"))


def test_bad_options_name_the_field(tmp_path):
    with pytest.raises(ValueError, match="--engines"):
        _opts(tmp_path, engines=("festival",))
    with pytest.raises(ValueError, match="--augment"):
        _opts(tmp_path, augment="loud")
    for field, flag in (("test_share", "--test-share"), ("validation_share", "--validation-share")):
        with pytest.raises(ValueError, match=flag):
            _opts(tmp_path, **{field: 0.0})
    with pytest.raises(ValueError, match="less than a fifth"):
        _opts(tmp_path, test_share=0.6, validation_share=0.3)


def test_split_shares_reach_the_plan_from_the_command_line(tmp_path, monkeypatch):
    """`data build --test-share/--validation-share` set how many sentences each held-out split gets."""
    from collections import Counter

    from whisper_edge.cli import build_parser
    from whisper_edge.data_commands import _cmd_data_build

    class Built(Exception):
        """Stops the command once the options reach the build (nothing is synthesized)."""

    def build(opts, overwrite):
        seen["opts"] = opts
        raise Built

    seen = {}
    monkeypatch.setattr(build_mod, "build_corpus", build)
    args = build_parser().parse_args(["data", "build", "--out", str(tmp_path / "c"), "--utterances", "200",
                                      "--test-share", "0.3", "--validation-share", "0.05"])
    with pytest.raises(Built):
        _cmd_data_build(args)
    plan = build_mod._make_plan(seen["opts"], [f"वाक्य {i}" for i in range(200)])
    assert Counter(it["split"] for it in plan) == {"test": 60, "validation": 10, "train": 130}
    default = build_mod._make_plan(_opts(tmp_path, test_share=0.08, validation_share=0.06), [f"वाक्य {i}" for i in range(200)])
    assert Counter(it["split"] for it in default) == {"test": 16, "validation": 12, "train": 172}
