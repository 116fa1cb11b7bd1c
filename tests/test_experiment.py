"""The whole pipeline on the tiny model: train dense/SGL/IMP, prune, export, bench, results; resumes."""

import json
import re
from pathlib import Path

import pytest
import yaml

from whisper_edge import timeline
from whisper_edge.cli import main
from whisper_edge.evaluation import check_extra_validation
from whisper_edge.results import bundle_rows


def test_experiment_end_to_end_and_resume(tiny_model, speech_corpus, tmp_path, capsys):
    extra, xval = tmp_path / "extra", tmp_path / "extra-val"
    cfg = {
        "model": str(tiny_model), "data": str(speech_corpus), "steps": 2,
        "dense": {"batch_size": 4, "eval_every": 0, "max_label_tokens": 40},
        "sgl": {"batch_size": 4, "eval_every": 0, "max_label_tokens": 40, "learning_rate": 1e-3, "warmup_steps": 0,
                "sgl.lambda_enc": 5.0, "sgl.lambda_dec": 5.0, "sgl.alpha": 0.0, "sgl.gamma": 3.0, "sgl.calib_batches": 1},
        "imp": {"rounds": 2}, "prune": {"wer_budget": None, "recover_steps": 0, "eval_limit": 2},
        "export": ["none"], "int8_encoder": 1,
        "eval": {"split": "test", "limit": 2, "max_new_tokens": 8, "extra_test": str(speech_corpus)},
        "bench": {"limit": 2, "compare": ["pytorch"], "threads": 1, "repeats": 1, "max_new_tokens": 8},
    }
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "exp"
    # an extra test set that speaks the training corpus's sentences is refused before anything runs or is made
    assert main(["experiment", "--config", str(path), "--out", str(out)]) == 2
    assert "speaks 6 sentence(s) of the training corpus" in capsys.readouterr().err and not out.exists()
    # the extra test set built by the run itself (the config's build section, whisper_edge/corpora.py)
    cfg["build"] = {str(extra): {"utterances": 20, "engines": ["espeak"], "augment": "none", "seed": 1,
                                 "test_only": True, "exclude": [str(speech_corpus)]}}
    cfg["build"][str(xval)] = {"utterances": 20, "engines": ["espeak"], "augment": "none", "seed": 2,
                               "validation_only": True, "exclude": [str(speech_corpus), str(extra)]}
    cfg["eval"] |= {"extra_test": str(extra), "extra_validation": str(xval)}
    path.write_text(yaml.safe_dump(cfg))
    assert main(["experiment", "--config", str(path), "--out", str(out)]) == 0
    assert ("build corpus " + str(extra)) in [stage for _, stage, _ in timeline.read(out)]
    res = json.loads((out / "results.json").read_text())
    assert set(res["models"]) == {"base (zero-shot)", "dense", "sgl", "sgl+adaptive", "imp"}
    pooled = res["models"]["imp"]["splits"]["test+extra_test"]  # test (limit 2) and the extra set (limit 2) as one
    assert pooled["utterances"] == 4 and pooled["per_utterance"][2][0].startswith("extra_test/")
    assert pooled["wer"] == pytest.approx(100 * sum(u[1] for u in pooled["per_utterance"])
                                          / sum(u[2] for u in pooled["per_utterance"]))
    assert res["models"]["sgl+adaptive"]["params"]["total"] < res["models"]["dense"]["params"]["total"]
    labels = [r["label"] for r in res["bench"]["rows"]]
    assert "pytorch fp32" in labels and any("sgl" in l for l in labels)
    md = (out / "results.md").read_text()
    assert "| sgl+adaptive |" in md and "## Targets" in md and "SGL+adaptive WER within 0.5 of IMP's" in md
    assert set(res["models"]["sgl+adaptive"]["splits"]) == {"test_noisy", "test_long", "extra_test", "test+extra_test"}
    assert "WER ≤ dense + 0.5 (test + extra test set, 4 utterances" in md
    assert "## WER on every split" in md and "test_noisy" in md and "[" in md.split("## WER on every split")[1]
    cond = md.split("### test_noisy by condition")  # where the hard split's errors come from
    assert len(cond) == 2 and any(f"| noise {band} |" in cond[1] for band in ("0–3 dB", "4–6 dB", "7–10 dB"))
    xv = json.loads((out / "extra_validation.json").read_text())  # eval.extra_validation: after pruning, before the test
    assert xv["corpus"] == str(xval) and set(xv["models"]) == {"dense", "sgl+adaptive", "imp"}
    assert all(m["utterances"] == 2 for m in xv["models"].values())  # eval.limit
    assert re.search(r"\| imp \| 2 \| [\d.]+ \| [+-][\d.]+ \[", md.split("## Extra validation set")[1])
    for bad, msg in ((speech_corpus, r"speaks \d+ sentence.s. of the training corpus"), (extra, "no readable validation split")):
        with pytest.raises(ValueError, match=msg):
            check_extra_validation(speech_corpus, bad)
    check_extra_validation(speech_corpus, xval, extra)  # built with --exclude-corpus of the extra test set: accepted
    with pytest.raises(ValueError, match=r"speaks \d+ sentence.s. of the extra test set"):
        check_extra_validation(speech_corpus, xval, xval)
    with pytest.raises(ValueError, match=r"^prune.confirm_on: .* speaks \d+ sentence.s. of the training corpus"):
        check_extra_validation(speech_corpus, speech_corpus, key="prune.confirm_on")
    assert (out / "pareto.png").stat().st_size > 1000 and (out / "widths.png").stat().st_size > 1000
    assert res["bundles"]["sgl+adaptive int8 vocab-hi"]["vocab"] < res["models"]["dense"]["vocab"]
    enc = res["bundles"].get("sgl+adaptive int8 int8-encoder-k1 vocab-hi")  # int8_encoder: 1 (or its WER refusal)
    assert enc or "sgl+adaptive int8 int8-encoder-k1 vocab-hi" in res["refused_bundles"]
    if enc:
        manifest = json.loads((Path(enc["path"]) / "manifest.json").read_text())
        assert manifest["int8_encoder"] is True and len(manifest["encoder_scan"]["fp32_groups"]) == 1
    rows = {r["label"]: r for r in bundle_rows(res)}
    assert rows["sgl+adaptive int8 vocab-hi"]["params"] < rows["sgl+adaptive fp32"]["params"] < rows["dense fp32"]["params"]
    assert "rtf" in rows["dense fp32"] and rows["dense fp32"]["bytes"] > rows["sgl+adaptive fp32"]["bytes"]
    mtime = (out / "sgl" / "summary.json").stat().st_mtime
    assert main(["experiment", "--config", str(path), "--out", str(out)]) == 0  # every stage is skipped
    assert (out / "sgl" / "summary.json").stat().st_mtime == mtime
    stages = [(stage, status) for _, stage, status in timeline.read(out)]
    assert stages[:6] == [("invocation", "started"), ("build corpus " + str(extra), "started"),
                          ("build corpus " + str(xval), "started"), ("import", "started"), ("train dense", "started"),
                          ("train sgl", "started")]
    assert sum(s.startswith("build corpus") for s, _ in stages) == 2  # the second invocation found the corpora built
    assert ("train sgl", "skipped") in stages[stages.index(("import", "skipped")):]  # the second invocation
    md = (out / "results.md").read_text()
    assert "## Wall time by stage" in md and "| 2 | bench |" not in md  # the bench ran in the first invocation only
    capsys.readouterr()  # continuing with a seed its finished dense model was not trained with is refused, nothing written
    assert main(["experiment", "--config", str(path), "--out", str(out), "--set", "seed=1"]) == 2
    assert "finished stage dense was made with other settings" in capsys.readouterr().err
    assert yaml.safe_load((out / "experiment.yaml").read_text())["seed"] == 0
    # a variant of this run: its SGL stage changed, so base and dense (and their evaluations) come from the run and the
    # SGL stage, pruning and IMP are computed; --validation-only stops before any test split is read
    variant = tmp_path / "variant"
    args = ["experiment", "--config", str(path), "--out", str(variant), "--reuse", str(out), "--set", "sgl.learning_rate=2e-3"]
    assert main(args + ["--validation-only"]) == 0
    rec = json.loads((variant / "reused.json").read_text())
    assert rec["stages"] == ["base", "dense"] and rec["not_reused"] == {"sgl": "sgl.learning_rate differs", "sgl-pruned": "sgl was not reused"}
    assert rec["evaluations"] == ["base (zero-shot)", "dense", f"dense on {xval}"]
    assert "| sgl+adaptive | 2 |" in (variant / "validation.md").read_text().split("## Extra validation set")[1]
    assert (variant / "dense" / "model" / "config.json").read_bytes() == (out / "dense" / "model" / "config.json").read_bytes()
    assert (variant / "sgl" / "summary.json").stat().st_mtime > mtime and (out / "sgl" / "summary.json").stat().st_mtime == mtime
    assert set(json.loads((variant / "results.json").read_text())["models"]) == {"base (zero-shot)", "dense"}
    assert "no test split was read" in (variant / "validation.md").read_text()
    assert not any(stage.startswith("eval") for _, stage, _ in timeline.read(variant))
    assert main(args) == 0  # the same command without --validation-only continues: the test splits, exports, bench
    res = json.loads((variant / "results.json").read_text())
    assert set(res["models"]) == {"base (zero-shot)", "dense", "sgl", "sgl+adaptive", "imp"}
    assert res["models"]["dense"]["wer"] == json.loads((out / "results.json").read_text())["models"]["dense"]["wer"]
    assert json.loads((variant / "reused.json").read_text())["stages"] == ["base", "dense"]
    assert ("eval dense", "started") not in [(s, st) for _, s, st in timeline.read(variant)]
    capsys.readouterr()
    assert main(["experiment", "--config", str(path), "--out", str(tmp_path / "v2"), "--reuse", str(speech_corpus)]) == 2
    assert "not an experiment folder" in capsys.readouterr().err and not (tmp_path / "v2").exists()


def test_timeline_counts_only_stages_that_ran_in_one_piece():
    entries = [["2026-01-01T10:00:00", "import", "started"], ["2026-01-01T10:00:10", "train dense", "started"],
               ["2026-01-01T10:30:10", "train sgl", "started"],  # killed here
               ["2026-01-01T12:00:00", "import", "skipped"], ["2026-01-01T12:00:01", "train dense", "skipped"],
               ["2026-01-01T12:00:02", "train sgl", "started"], ["2026-01-01T12:10:02", "results", "started"]]
    rows = {(r["stage"], r["invocation"]): r["seconds"] for r in timeline.durations(entries)}
    assert rows == {("import", 1): 10.0, ("train dense", 1): 1800.0, ("train sgl", 1): None, ("train sgl", 2): 600.0}
    text = "\n".join(timeline.section(entries))
    assert "| 1 | train sgl | 2026-01-01T10:30:10 | interrupted |" in text and "**40.2 min**" in text


def test_an_invocation_line_keeps_the_corpus_builds_before_import_in_their_invocation():
    """Since the experiment builds corpora before `import`, an invocation starts at its own line, not at import."""
    entries = [["2026-01-01T10:00:00", "invocation", "started"], ["2026-01-01T10:00:00", "build corpus a", "started"],
               ["2026-01-01T10:14:00", "build corpus b", "started"], ["2026-01-01T10:18:00", "import", "started"],
               ["2026-01-01T10:18:05", "train dense", "started"],  # killed here
               ["2026-01-01T11:00:00", "invocation", "started"], ["2026-01-01T11:00:00", "build corpus b", "started"],
               ["2026-01-01T11:02:00", "import", "skipped"], ["2026-01-01T11:02:01", "train dense", "started"],
               ["2026-01-01T11:30:01", "results", "started"],
               ["2026-01-01T12:00:00", "import", "skipped"],  # an invocation from before the line existed
               ["2026-01-01T12:00:01", "results", "started"]]
    rows = {(r["stage"], r["invocation"]): r["seconds"] for r in timeline.durations(entries)}
    assert rows == {("build corpus a", 1): 840.0, ("build corpus b", 1): 240.0, ("import", 1): 5.0,
                    ("train dense", 1): None, ("build corpus b", 2): 120.0, ("train dense", 2): 1680.0}
    assert "Stages ran in 2 invocations" in "\n".join(timeline.section(entries))  # the third only skipped


def test_replicate_recipe_is_the_paper_recipe_cut_where_it_says():
    from pathlib import Path

    from whisper_edge.experiment import load_config

    recipes = Path(__file__).resolve().parents[1] / "recipes"
    paper, rep = load_config(recipes / "paper.yaml"), load_config(recipes / "replicate.yaml")
    assert all(rep[k] == paper[k] for k in ("model", "data", "steps", "start", "dense", "export", "vocab",
                                            "export_wer_clips", "export_max_wer_increase", "export_fallback"))
    assert rep["sgl"] is None and rep["prune"]["mask_from"] == "dense"  # nothing reads an SGL model there
    same = ("schedule", "round_eval_every", "round_stop_early", "recover_lr", "wer_budget", "eval_limit", "distill",
            "teacher_top_k", "distill_alpha", "compensate", "ridge", "calib_batches", "keep_tolerance", "score", "recover_set")
    assert all(rep["prune"][k] == paper["prune"][k] for k in same)
    n = len(rep["prune"]["targets"])
    assert rep["prune"]["targets"] == paper["prune"]["targets"][:n] and rep["prune"]["round_steps"] == paper["prune"]["round_steps"][:n]
    assert rep["imp"] is None and rep["bench"] is None and rep["eval"]["extra_test"] == "runs/extra-test"
    assert rep["int8_encoder"] is None and paper["int8_encoder"] == 2  # the cut the comment names
    assert rep["eval"] | {"extra_test": None} == paper["eval"]


def test_demo_config_is_a_valid_experiment():
    from whisper_edge.demo import _what_ran, demo_config
    from whisper_edge.experiment import load_config
    from whisper_edge.training.recipes import load_recipe

    cfg = load_config(demo_config("corpus-small"))
    assert cfg["imp"] is None and cfg["data"] == "corpus-small"
    assert cfg["eval"]["hard_split_models"] == ["dense", "sgl+adaptive"]
    with pytest.raises(ValueError, match="eval.hard_split_models"):
        load_config({"data": "c", "eval": {"hard_split_models": "dense"}})
    with pytest.raises(ValueError, match="prune.confirm_on confirms the choice among gradual rounds"):
        load_config({"data": "c", "prune": {"confirm_on": "runs/extra-val"}})  # the one-shot search has no rounds
    load_recipe("dense", {"max_steps": cfg["steps"]} | cfg["dense"])  # raises on a bad field
    # the route the full experiment selected (recipes/replicate.yaml): the dense model's groups, no SGL stage
    assert cfg["sgl"] is None and cfg["prune"]["schedule"] == "gradual" and cfg["prune"]["mask_from"] == "dense"
    assert _what_ran(cfg) == "100 dense steps, pruning to 35 % of attention + FFN with 20 recovery steps"
    assert "2 SGL steps" in _what_ran(cfg | {"sgl": {}, "steps": 2})
    from whisper_edge.demo import DEMO_CORPUS
    from whisper_edge.runtime.features import window_seconds

    # one window throughout (a stage with another would warn, or train a window the model no longer has), and
    # test_long's windows fit it, so that every test_long clip is read
    ctx = cfg["dense"]["audio_ctx"]
    assert cfg["prune"]["recover_set"]["audio_ctx"] == ctx
    assert window_seconds(ctx) == DEMO_CORPUS["long_seconds"] < 10


def test_demo_refuses_a_corpus_an_earlier_demo_built(tmp_path):
    """A demo-out from before today's corpus settings: refused with the settings named, nothing written or deleted."""
    from whisper_edge.demo import DEMO_CORPUS, demo_config, run_demo
    from whisper_edge.training.corpus.build import BuildOptions, build_settings

    corpus = tmp_path / "demo-out" / "corpus-small"
    corpus.mkdir(parents=True)
    (corpus / "dataset_dict.json").write_text("{}")
    old = build_settings(BuildOptions.small(corpus, **DEMO_CORPUS))
    del old["long_seconds"]  # a build from before the setting: it read 10 s
    (corpus / "summary.json").write_text(json.dumps({"settings": old}))
    with pytest.raises(SystemExit, match="long_seconds differ"):
        run_demo(tmp_path / "demo-out")
    assert sorted(p.name for p in (tmp_path / "demo-out").iterdir()) == ["corpus-small"]
    # today's corpus, but an experiment an earlier demo ran (session 37: an SGL stage, `steps: 15`): refused in the
    # demo's words, its finished stage named, nothing deleted
    (corpus / "summary.json").write_text(json.dumps({"settings": build_settings(BuildOptions.small(corpus, **DEMO_CORPUS)),
                                                     "splits": {"train": {"utterances": 612}}}))
    exp = tmp_path / "demo-out" / "experiment"
    (exp / "dense").mkdir(parents=True)
    (exp / "dense" / "summary.json").write_text("{}")
    earlier = demo_config(corpus) | {"steps": 15, "sgl": {"sgl.lambda_enc": 4.0}}
    (exp / "experiment.yaml").write_text(yaml.safe_dump(earlier))
    with pytest.raises(SystemExit, match=r"finished stage dense .*steps: 15.*earlier version of the demo.*another --out"):
        run_demo(tmp_path / "demo-out")
    assert (exp / "dense" / "summary.json").read_text() == "{}" and yaml.safe_load((exp / "experiment.yaml").read_text()) == earlier


def test_recover_set_reaches_every_recovery_and_imp_and_a_bad_field_fails_at_load():
    from whisper_edge.experiment_config import load_config, recover_overrides

    cfg = load_config({"data": "c", "prune": {"recover_lr": 1e-5, "recover_set": {"augment.p_concat": 0.6}}})
    assert recover_overrides(cfg) == {"seed": 0, "learning_rate": 1e-5, "augment.p_concat": 0.6}
    assert recover_overrides(load_config({"data": "c"})) == {"seed": 0}
    with pytest.raises(ValueError, match="recover_set.*augment.p_conct"):
        load_config({"data": "c", "prune": {"recover_set": {"augment.p_conct": 0.6}}})
    with pytest.raises(ValueError, match="recover_set must be a mapping"):
        load_config({"data": "c", "prune": {"recover_set": [0.6]}})


def test_set_overrides_a_setting_of_the_config_file_and_a_misspelt_one_fails():
    """`whisper-edge experiment --set`: replicate.yaml with IMP switched on, a nested field changed, a section nulled."""
    from pathlib import Path

    from whisper_edge.commands import _overrides
    from whisper_edge.experiment_config import load_config

    rep = Path(__file__).resolve().parents[1] / "recipes" / "replicate.yaml"
    cfg = load_config(rep, _overrides(["imp.rounds=4", "prune.round_steps=[40, 100]", "vocab=false", "steps=50"]))
    assert cfg["imp"] == {"rounds": 4} and cfg["steps"] == 50
    assert cfg["prune"]["round_steps"] == [40, 100] and cfg["prune"]["targets"] == [0.25, 0.35]  # the rest of prune kept
    assert cfg["vocab"] is False and load_config(rep)["imp"] is None  # the file itself is unchanged
    assert load_config(rep.with_name("paper.yaml"), {"imp": None})["imp"] is None  # a section switched off
    with pytest.raises(ValueError, match="with --set eval: eval must be a mapping"):
        load_config(rep, {"eval": None})
    with pytest.raises(ValueError, match="--set prune.round_step.*unknown key prune.round_step"):
        load_config(rep, {"prune.round_step": [40]})
    with pytest.raises(ValueError, match="--set impp.rounds: unknown key 'impp'"):
        load_config(rep, {"impp.rounds": 4})
    with pytest.raises(ValueError, match="steps is a value, not a section"):
        load_config(rep, {"steps.max": 4})


def test_int8_encoder_adds_one_bundle_of_the_pruned_model_and_a_bad_count_is_named():
    """int8_encoder: K: the pruned model also exported with an int8 encoder (K groups fp32) and the Hindi vocabulary."""
    from whisper_edge.experiment import export_variants
    from whisper_edge.experiment_config import load_config

    cfg = load_config({"data": "c", "export": ["int8"], "int8_encoder": 2})
    assert export_variants(cfg, "dense") == [("dense {}", "int8", None, None)]
    assert export_variants(cfg, "sgl+adaptive") == [
        ("sgl+adaptive {}", "int8", None, None), ("sgl+adaptive {} vocab-hi", "int8", "hi", None),
        ("sgl+adaptive {} int8-encoder-k2 vocab-hi", "int8", "hi", 2)]
    plain = load_config({"data": "c", "export": ["int8"], "vocab": False})  # the default: no int8-encoder bundle
    assert export_variants(plain, "sgl+adaptive") == [("sgl+adaptive {}", "int8", None, None)]
    for bad in (-1, True, 1.5, "two"):
        with pytest.raises(ValueError, match="int8_encoder must be a count of encoder weight groups"):
            load_config({"data": "c", "int8_encoder": bad})


def test_null_eval_limit_means_every_validation_clip_on_every_path():
    from whisper_edge.experiment_config import load_config, val_limit

    assert val_limit(load_config({"data": "c", "prune": {"eval_limit": None}})["prune"]) >= 10_000
    assert val_limit(load_config({"data": "c"})["prune"]) == 48  # the default when the key is absent
    assert val_limit({"eval_limit": 0}) == 0  # 0 = no validation, not every clip


def test_imp_comparison_judges_only_matched_shares():
    from whisper_edge.results import imp_matched

    def judge(rounds, imp):
        return imp_matched([{"share": s, "val_wer": w} for s, w in rounds], [{"weight_sparsity": s, "val_wer": w} for s, w in imp])

    # 25 % has no IMP round near it (19 %): shown, not judged; 35 % matched and better than IMP → met
    text, met = judge([(0.25, 7.95), (0.35, 7.05)], [(0.194, 6.67), (0.35, 7.18)])
    assert met is True and "25 %: 7.95 vs 6.67 (19 %, not matched" in text and "35 %: 7.05 vs 7.18 (35 %)" in text
    assert judge([(0.35, 7.95)], [(0.35, 7.18)])[1] is False  # matched and 0.77 worse
    assert judge([(0.25, 7.95)], [(0.194, 6.67)])[1] is False  # nothing matched: nothing to call met


def test_round_latency_table_and_figure(tmp_path):
    """prune.export_rounds: each round's bundle latency lands in results.md's rounds section and in a third panel."""
    pytest.importorskip("matplotlib")
    from whisper_edge.plots import plot_pareto
    from whisper_edge.results import pruning_sections

    rounds = [{"round": i + 1, "share": s, "val_wer": w, "params": 60_000_000 - i, "encoder_flops": 1.7e10,
               "val_wer_pruned": 9.9, "recovery": {"steps": n}}
              for i, (s, w, n) in enumerate([(0.25, 9.4, 40), (0.35, 10.1, 140)])]
    results = {"prune": {"rounds": rounds, "chosen_round": 1, "budget_met": False,
                         "wer_budget": {"base_wer": 8.85, "budget": 0.5}},
               "imp_points": [{"step": 60, "weight_sparsity": 0.25, "val_wer": 7.7}],
               "round_latency": {"dense_rtf": 0.127, "imp_rtf": 0.141, "rounds": [
                   {"round": 1, "share": 0.25, "val_wer": 9.4, "rtf": 0.121, "encoder_ms": 90.0, "peak_rss_mb": 257.0},
                   {"round": 3, "share": 0.45, "val_wer": 9.9, "refusals": {"int8": "| WER | fp32 7.63 → int8 10.43 | ✗ |",
                                                                            "int8w": "| WER | fp32 7.63 → int8w 9.92 | ✗ |"}},
                   {"round": 2, "share": 0.35, "val_wer": 10.1, "refused": "| WER | fp32 14.50 → int8 16.54 | ✗ |",
                    "quantization": "int8w", "rtf": 0.110, "encoder_ms": 80.0, "peak_rss_mb": 250.0}]}}
    text = "\n".join(pruning_sections(results))
    assert "| 1 | 25.0 % | 9.40 | int8 | 90 | 0.121 | 257 |" in text and "| 2 | 35.0 % | 10.10 | int8w | 80 | 0.110 | 250 |" in text
    assert "Round 2: int8 refused by its WER check (WER fp32 14.50 → int8 16.54 ✗)." in text
    assert ("Round 3: int8 refused by its WER check (WER fp32 7.63 → int8 10.43 ✗); int8w refused by its WER check "
            "(WER fp32 7.63 → int8w 9.92 ✗): no bundle.") in text and "| 3 | 45.0 % | 9.90 | none | | | |" in text
    assert "dense int8 RTF 0.127, IMP int8 0.141" in text
    assert "| 2 | 35.0 % | 59,999,999 | 17.00 | 9.90 | 140 | 10.10 | recovered |" in text  # each round's own steps
    plot_pareto(results, tmp_path / "two.png")
    del results["round_latency"]
    plot_pareto(results, tmp_path / "one.png")
    from PIL import Image

    assert Image.open(tmp_path / "two.png").size[0] > Image.open(tmp_path / "one.png").size[0]  # the third panel
    from whisper_edge.results import pruned_model_note  # what the row named sgl+adaptive is in this run

    assert pruned_model_note(results) == ("sgl+adaptive: round 1 of 2 of the gradual schedule, 25.0 % of attention + FFN "
                                          "removed by the adaptive rule.")  # no mask_from, no config: an older record
    results["prune"] |= {"mask_from": "dense", "chosen_round": 2}
    results["config"] = {"sgl": None}
    assert pruned_model_note(results) == ("sgl+adaptive: round 2 of 2 of the gradual schedule, 35.0 % of attention + FFN "
                                          "removed by the adaptive rule; round 1's groups chosen by the dense model; "
                                          "no SGL stage ran.")
    results["prune"]["mask_from"], results["config"]["sgl"] = "sgl", {"max_steps": 100}
    assert pruned_model_note(results).endswith("round 1's groups chosen by the SGL model.")
    assert pruned_model_note({"prune": {"val_wer": {}}}) is None  # the one-shot strength search: no rounds


def test_a_refused_export_is_recorded_and_not_retried(tmp_path):
    from whisper_edge.exporter.export import ValidationError
    from whisper_edge.experiment import _export_once, _refusals

    calls = []

    def refuse(path):
        calls.append(path)
        raise ValidationError("checks failed\n| WER | fp32 14.50 → int8 16.54 | ✗ |")

    assert _export_once("round 4 int8", tmp_path / "b", tmp_path, {}, refuse) is False
    assert _refusals(tmp_path) == {"round 4 int8": "| WER | fp32 14.50 → int8 16.54 | ✗ |"}
    assert _export_once("round 4 int8", tmp_path / "b", tmp_path, _refusals(tmp_path), refuse) is False  # a resume
    assert len(calls) == 1


def test_a_refused_int8_export_falls_back_to_the_fallback_mode(tmp_path):
    """export_fallback: a variant the WER check refuses is exported in the fallback mode; other failures are not."""
    from whisper_edge.experiment import _export_with_fallback, _refusals, load_config
    from whisper_edge.exporter.export import ValidationError

    calls = []

    def export(path, q):
        calls.append(q)
        if q == "int8":
            raise ValidationError("checks failed\n| WER | fp32 10.69 → int8 15.52 | ✗ |")
        (path / "manifest.json").parent.mkdir(parents=True)
        (path / "manifest.json").write_text("{}")

    got = _export_with_fallback("sgl+adaptive {} vocab-hi", "int8", "int8w", tmp_path, {}, export)
    assert got == {"label": "sgl+adaptive int8w vocab-hi", "path": tmp_path / "bundles" / "sgl-adaptive-int8w-vocab-hi",
                   "mode": "int8w", "replaces": "sgl+adaptive int8 vocab-hi"}
    assert calls == ["int8", "int8w"] and "sgl+adaptive int8 vocab-hi" in _refusals(tmp_path)
    assert _export_with_fallback("round 1 {}", "int8", None, tmp_path, {}, export) is None  # no fallback: nothing
    calls.clear()
    assert _export_with_fallback("dense {}", "none", "int8w", tmp_path, {}, export)["label"] == "dense fp32"
    assert calls == ["none"]
    with pytest.raises(ValueError, match="export_fallback must be one of"):
        load_config({"data": "c", "export_fallback": "int9"})


def test_round_exports_reuse_the_selected_rounds_bundle_and_refusal(tmp_path):
    """export_rounds: the selected round is the sgl+adaptive model — its int8 refusal and int8w bundle are reused,
    not made again; the other rounds are exported."""
    from whisper_edge.experiment import _round_latency

    (tmp_path / "sgl-pruned").mkdir()
    (tmp_path / "sgl-pruned" / "report.json").write_text(json.dumps({"chosen_round": 2, "rounds": [
        {"round": r, "share": s, "val_wer": 9.0, "model": f"m{r}"} for r, s in ((1, 0.25), (2, 0.35))]}))
    made = tmp_path / "bundles" / "sgl-adaptive-int8w"
    made.mkdir(parents=True)
    (made / "manifest.json").write_text("{}")
    refused = {"sgl+adaptive int8": "| WER | fp32 8.00 → int8 10.29 | ✗ |"}
    (tmp_path / "bench-rounds").mkdir()
    (tmp_path / "bench-rounds" / "bench.json").write_text(json.dumps({"rows": [
        {"target": str(tmp_path / "bundles" / n), "rtf": rtf, "encoder_ms": 50.0, "peak_rss_mb": 200.0}
        for n, rtf in (("round-1-int8", 0.07), ("sgl-adaptive-int8w", 0.06))]}))
    calls = []

    def export(model, path, q):
        calls.append((model, q))
        (path / "manifest.json").parent.mkdir(parents=True)
        (path / "manifest.json").write_text("{}")

    got = _round_latency(tmp_path, "data", {"limit": 2, "threads": 1, "repeats": 1}, {}, refused, "int8w", export)
    assert calls == [("m1", "int8")]  # round 2's bundle was not made again
    r1, r2 = got["rounds"]
    assert (r1["rtf"], r1["quantization"], r1["refusals"]) == (0.07, "int8", {})
    assert (r2["rtf"], r2["quantization"]) == (0.06, "int8w") and r2["refusals"] == {"int8": refused["sgl+adaptive int8"]}


def test_eval_reports_compare_with_a_paired_interval():
    from whisper_edge.results import compare_reports

    refs = ["मेरा भाई शहर में है", "आज बारिश हुई", "वह घर गया"]
    base = {"per_utterance": [{"id": f"u{i}", "ref": r, "hyp": r} for i, r in enumerate(refs)]}
    worse = {"per_utterance": [{"id": f"u{i}", "ref": r, "hyp": r.split()[0]} for i, r in enumerate(refs)]}
    ci = compare_reports(base, worse)
    assert ci["utterances"] == 3 and ci["diff"] > 50 and ci["lo"] <= ci["diff"] <= ci["hi"]
    assert compare_reports(worse, worse)["diff"] == 0
    with pytest.raises(ValueError, match="share no utterance"):
        compare_reports(base, {"per_utterance": [{"id": "other", "ref": "क", "hyp": "क"}]})


def _model(wer, unseen, ffn):
    arch = {"format": 1, "head_dim": 64, "d_model": 512, "audio_ctx": 500,
            "encoder": [{"heads": 8, "ffn": ffn}] * 2, "decoder": [{"self_heads": 8, "cross_heads": 8, "ffn": ffn}] * 2}
    return {"wer": wer, "by_group": {"seen": {"wer": wer}, "unseen": {"wer": unseen}}, "architecture": arch,
            "flops": {"encoder": ffn * 1e6, "cross_kv": 1e8, "decoder_per_token": ffn * 1e4},
            "params": {"total": ffn * 10_000}, "per_utterance": []}


def test_targets_report_the_held_out_voices():
    from whisper_edge.results import targets

    rows = {t: (m, ok) for t, m, ok in targets({"models": {"dense": _model(10.0, 12.0, 2048), "sgl+adaptive": _model(11.0, 16.0, 1024)}})}
    assert rows["dense WER on held-out voices (test, unseen family) within 10 points of test"] == ("12.00 vs 10.00", True)
    assert rows["compressed model's WER loss on held-out voices no larger than on test"] == ("+4.00 vs +1.00", False)


def test_pareto_axis_keeps_the_structured_points_readable_beside_a_collapsed_imp_round():
    from whisper_edge.plots import _y_cap

    ours = [(0.0, 8.75), (25.0, 9.35), (55.0, 17.92)]
    assert _y_cap(ours, [(25.0, 8.4), (45.0, 13.72)]) is None  # everything fits: matplotlib's own limits
    top = _y_cap(ours, [(25.0, 8.4), (55.0, 100.86)])
    assert 17.92 < top < 100.86


def test_calibration_auto_chooses_on_the_noisy_ablation_rows():
    from whisper_edge.experiment import load_config
    from whisper_edge.training.gradual import choose_calibration

    def rows(clean, clean_noisy, aug, aug_noisy, base="SGL's groups, dense weights, compensation"):
        return [{"variant": base, "val_wer": clean, "val_wer_noisy": clean_noisy},
                {"variant": base + ", calibration on augmented audio", "val_wer": aug, "val_wer_noisy": aug_noisy}]

    assert choose_calibration(rows(9.35, 34.2, 9.6, 30.1), "sgl", 0.5)  # better under noise, 0.25 worse clean
    assert not choose_calibration(rows(9.35, 34.2, 10.1, 30.1), "sgl", 0.5)  # 0.75 worse clean: over the tolerance
    assert not choose_calibration(rows(9.35, 34.2, 9.2, 34.9), "sgl", 0.5)  # no better under noise
    assert choose_calibration(rows(9.4, 30.0, 9.4, 29.0, base="compensation"), "dense", 0.0)
    with pytest.raises(ValueError, match="ablate_noisy"):
        choose_calibration(rows(9.35, 34.2, 9.6, 30.1), "dense", 0.5)  # the dense mask's rows were not measured
    good = {"data": "c", "prune": {"schedule": "gradual", "ablate": True, "ablate_noisy": True, "calib_augment": "auto"}}
    assert load_config(good)["prune"]["calib_augment"] == "auto"
    with pytest.raises(ValueError, match="ablate_noisy"):
        load_config({"data": "c", "prune": good["prune"] | {"ablate_noisy": False}})
    with pytest.raises(ValueError, match=re.escape("prune.calib_augment must be true | false | auto, got 'yes'")):
        load_config({"data": "c", "prune": {"calib_augment": "yes"}})
    assert load_config({"data": "c", "prune": {"keep_tolerance": None}})["prune"]["keep_tolerance"] is None
    for key, bad in (("keep_tolerance", -0.5), ("keep_tolerance", "always"), ("calib_tolerance", None)):
        with pytest.raises(ValueError, match=re.escape(f"prune.{key} must be a WER difference ≥ 0")):
            load_config({"data": "c", "prune": {key: bad}})
    with pytest.raises(ValueError, match=re.escape("prune.mask_from must be auto | sgl | dense, got 'imp'")):
        load_config({"data": "c", "prune": {"mask_from": "imp"}})  # refused when the config is read, not at the rounds
    assert load_config({"data": "c", "prune": {"score": "obs", "compare_score": "activation"}})["prune"]["score"] == "obs"
    with pytest.raises(ValueError, match="prune.compare_score must be one of activation, obs, rms"):
        load_config({"data": "c", "prune": {"compare_score": "fisher"}})


def test_a_round_without_recovery_steps_shows_no_recovered_wer():
    from whisper_edge.results import pruning_sections

    rounds = [{"round": 1, "share": 0.25, "val_wer": 7.72, "val_wer_pruned": 7.72, "params": 61_049_845,
               "encoder_flops": 1.765e10, "kept": "pruned", "recovery": {"steps": 0}}]
    lines = pruning_sections({"prune": {"rounds": rounds, "chosen_round": 1, "budget_met": False,
                                        "wer_budget": {"base_wer": 7.12, "budget": 0.5}}})
    row = next(line for line in lines if line.startswith("| 1 |"))
    assert "nan" not in row and row.endswith("| 7.72 | 0 | – | pruned |")


def test_the_experiments_seed_reaches_every_training_stage_unless_a_section_sets_its_own():
    from whisper_edge.experiment_config import load_config, recover_overrides, seeded

    cfg = load_config({"data": "c", "seed": 3, "dense": {"seed": 7}})
    assert seeded(cfg, {"max_steps": 5} | cfg["dense"])["seed"] == 7  # the section's own seed wins
    assert seeded(cfg, cfg["sgl"])["seed"] == 3
    assert recover_overrides(cfg)["seed"] == 3  # every recovery and IMP's training
    own = load_config({"data": "c", "seed": 3, "prune": {"recover_set": {"seed": 9}}})
    assert recover_overrides(own)["seed"] == 9
    assert load_config({"data": "c"}, {"seed": 2})["seed"] == 2  # --set seed=2
    for bad in (-1, 1.5, "one", True):
        with pytest.raises(ValueError, match="seed must be an integer"):
            load_config({"data": "c", "seed": bad})


def test_sgl_null_runs_no_sgl_stage_where_nothing_reads_it(tiny_model, speech_corpus, tmp_path, capsys):
    """recipes/replicate.yaml's rounds take the dense model's groups: its SGL stage (100 steps, about 20 minutes on
    the CPU) made a model nothing used. ``sgl: null`` skips it, and only where no stage reads the SGL model."""
    from whisper_edge.experiment import load_config

    gradual = {"schedule": "gradual", "mask_from": "dense", "targets": [0.25], "round_steps": [1], "eval_limit": 2,
               "wer_budget": 0.5, "calib_batches": 1}
    for prune, why in (({}, "schedule 'search'"), (gradual | {"mask_from": "auto"}, "mask_from 'auto'")):
        with pytest.raises(ValueError, match=f"sgl: null .*needs .*{why}"):
            load_config({"data": "c", "sgl": None, "prune": prune})
    cfg = {"model": str(tiny_model), "data": str(speech_corpus), "steps": 1, "sgl": None, "imp": None,
           "dense": {"batch_size": 4, "eval_every": 0, "max_label_tokens": 40}, "prune": gradual,
           "export": [], "vocab": False, "eval": {"split": "test", "limit": 2, "max_new_tokens": 8, "zero_shot": False,
                                                 "hard_splits": []}, "bench": None}
    path, out = tmp_path / "exp.yaml", tmp_path / "exp"
    path.write_text(yaml.safe_dump(cfg))
    assert main(["experiment", "--config", str(path), "--out", str(out)]) == 0
    assert "sgl: null — no SGL stage" in capsys.readouterr().out and not (out / "sgl").exists()
    res = json.loads((out / "results.json").read_text())
    assert set(res["models"]) == {"dense", "sgl+adaptive"}
    assert res["models"]["sgl+adaptive"]["params"]["total"] < res["models"]["dense"]["params"]["total"]
    assert "train sgl" not in [stage for _, stage, _ in timeline.read(out)]
