"""The experiment's build section: corpora a run builds itself, and a finished one built otherwise is refused."""

import json
import shutil

import pytest

from whisper_edge.corpora import build_options, pending_builds
from whisper_edge.experiment_config import load_config


def _settings_of(corpus) -> dict:
    s = json.loads((corpus / "summary.json").read_text())["settings"]
    return {k: v for k, v in s.items() if k not in ("jobs",)}


def test_a_finished_corpus_with_the_same_settings_is_used_and_with_others_refused(speech_corpus, tmp_path):
    same = _settings_of(speech_corpus)
    assert pending_builds({str(speech_corpus): same}) == []  # built already, as asked: nothing to do
    with pytest.raises(ValueError, match=r"built with other settings.*utterances: built 24, config 30"):
        pending_builds({str(speech_corpus): same | {"utterances": 30}})
    todo = pending_builds({str(tmp_path / "new"): {"utterances": 20, "engines": ["espeak"]},
                           str(speech_corpus): same})
    assert [o.out for o in todo] == [tmp_path / "new"] and todo[0].engines == ("espeak",)
    old = tmp_path / "old"  # built before a setting existed (summary.json lacks it): built with its default, used
    shutil.copytree(speech_corpus, old)
    summary = json.loads((old / "summary.json").read_text())
    del summary["settings"]["validation_only"]
    (old / "summary.json").write_text(json.dumps(summary))
    assert pending_builds({str(old): same}) == []
    with pytest.raises(ValueError, match=r"validation_only: built 'the default', config True"):
        pending_builds({str(old): same | {"validation_only": True, "test_only": False}})
    half = tmp_path / "half"  # a build in progress (no dataset_dict.json yet) is resumed, not refused
    shutil.copytree(speech_corpus, half)
    (half / "dataset_dict.json").unlink()
    assert [o.out for o in pending_builds({str(half): same})] == [half]


def test_a_bad_build_section_is_refused_at_load_with_the_field_named():
    with pytest.raises(ValueError, match=r"build\.runs/c: unknown setting 'utterance'"):
        load_config({"data": "runs/c", "build": {"runs/c": {"utterance": 10}}})
    with pytest.raises(ValueError, match=r"build\.runs/c: --kokoro-share must be within"):
        load_config({"data": "runs/c", "build": {"runs/c": {"kokoro_share": 2.0}}})
    with pytest.raises(ValueError, match="build must be a mapping of corpus folders"):
        load_config({"data": "runs/c", "build": ["runs/c"]})
    with pytest.raises(ValueError, match=r"build\.runs/c must be a mapping"):
        build_options("runs/c", 2400)
    opts = build_options("runs/x", {"utterances": 600, "test_only": True, "exclude": ["runs/c"], "seed": 1})
    assert opts.exclude[0].as_posix() == "runs/c" and opts.test_only and opts.utterances == 600
