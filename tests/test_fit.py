"""whisper-edge fit (issue 18): candidates exported, judged by WER and measured; the best within budget is written."""

from __future__ import annotations

import json

import pytest

from whisper_edge.cli import main
from whisper_edge.fit import FitError, fit


def test_fit_chooses_within_the_budget_and_says_what_came_closest(tiny_model, speech_corpus, tmp_path, capsys):
    roomy = tmp_path / "roomy.yaml"
    roomy.write_text("description: plenty\nthreads: 1\nmemory_budget_mb: 100000\ntarget_rtf: 1000.0\n"
                     "session: {release_memory: false}\n")
    out = tmp_path / "fit"
    args = ["fit", "--profile", str(roomy), "--model", str(tiny_model), "--data", str(speech_corpus), "--out", str(out),
            "--quantize", "none", "int4", "--clips", "2", "--wer-clips", "2"]
    assert main(args) == 0
    r = json.loads((out / "fit.json").read_text())
    assert [c["quantization"] for c in r["candidates"]] == ["none", "int4"] and all(c["fits"] for c in r["candidates"])
    best = min(r["candidates"], key=lambda c: (c["wer"], c["bytes"]))
    assert r["chosen"] == best["label"]
    assert json.loads((out / "bundle" / "manifest.json").read_text())["quantization"] == best["quantization"]
    assert "| candidate |" in (out / "fit.md").read_text()
    assert json.loads((out / "bench" / "bench.json").read_text())["session_options"] == {"release_memory": False}
    mtime = (out / "candidates" / best["label"] / "manifest.json").stat().st_mtime
    tight = tmp_path / "tight.yaml"
    tight.write_text("description: too small\nthreads: 1\nmemory_budget_mb: 1\ntarget_rtf: 1000.0\n")
    with pytest.raises(FitError, match=r"no candidate fits profile tight .* closest: m0-"):
        fit(tight, [tiny_model], speech_corpus, out, quantizations=["none", "int4"], clips=2, wer_clips=2)
    assert (out / "candidates" / best["label"] / "manifest.json").stat().st_mtime == mtime  # finished candidates reused


def test_a_candidate_of_another_model_is_made_again_not_reused(tiny_model, tiny_pruned, speech_corpus, tmp_path):
    roomy = tmp_path / "roomy.yaml"
    roomy.write_text("threads: 1\nmemory_budget_mb: 100000\ntarget_rtf: 1000.0\n")
    out = tmp_path / "fit"
    first = fit(roomy, [tiny_model], speech_corpus, out, quantizations=["none"], clips=1, wer_clips=1)
    assert first["candidates"][0]["model"] == str(tiny_model)
    # the same folder, another model first in the list: "m0-none" now means the pruned model and must not be reused
    second = fit(roomy, [tiny_pruned], speech_corpus, out, quantizations=["none"], clips=1, wer_clips=1)
    manifest = json.loads((out / "candidates" / "m0-none" / "manifest.json").read_text())
    assert manifest["provenance"]["model"] == str(tiny_pruned.resolve()) and second["candidates"][0]["model"] == str(tiny_pruned)
