"""--reuse: which of a finished run's stages a variant may take (whisper_edge/reuse.py), on folders made by hand."""

import json

import pytest
import yaml

from whisper_edge.reuse import LINK_FROM, reuse_stages, reused_reference

CFG = {"model": "m", "data": "d", "build": None, "steps": 10, "dense": {"max_steps": 30}, "start": "dense",
       "sgl": {"sgl.alpha": 0.1}, "prune": {"distill": True, "teacher_top_k": 16, "recover_lr": 1e-5},
       "eval": {"split": "test"}}


def _run(folder, cfg):
    for done in ("base/config.json", "dense/summary.json", "sgl/summary.json", "teacher.npz"):
        (folder / done).parent.mkdir(parents=True, exist_ok=True)
        (folder / done).write_text(done)
    (folder / "dense" / "model.bin").write_bytes(b"\0" * LINK_FROM)  # large: hard-linked
    (folder / "experiment.yaml").write_text(yaml.safe_dump(cfg))
    (folder / "results.json").write_text(json.dumps({"models": {n: {"wer": 1.0, "path": "x"} for n in ("dense", "sgl")}}))
    return folder


def test_a_pruning_variant_takes_every_upstream_stage_and_links_large_files(tmp_path):
    src = _run(tmp_path / "src", CFG)
    out = tmp_path / "out"
    (out / ".dense.reuse-999999" / "model").mkdir(parents=True)  # left by an invocation killed while it linked dense
    rec = reuse_stages(src, out, CFG | {"prune": CFG["prune"] | {"recover_lr": 3e-5}})
    assert not list(out.glob(".*"))  # the leftover is gone, and so is this invocation's temporary folder
    assert rec["stages"] == ["base", "dense", "sgl", "teacher.npz"] and rec["not_reused"] == {"sgl-pruned": "prune.recover_lr differs"}
    assert (out / "dense" / "model.bin").stat().st_ino == (src / "dense" / "model.bin").stat().st_ino
    assert (out / "dense" / "summary.json").stat().st_ino != (src / "dense" / "summary.json").stat().st_ino  # copied
    models = json.loads((out / "results.json").read_text())["models"]
    assert models["dense"]["path"] == str(out / "dense" / "model") and set(models) == {"dense", "sgl"}


def test_a_stage_downstream_of_a_changed_or_own_stage_is_not_taken(tmp_path):
    src = _run(tmp_path / "src", CFG)
    out = tmp_path / "out"
    out.mkdir()
    rec = reuse_stages(src, out, CFG | {"dense": {"max_steps": 60}, "eval": {"split": "validation"}})
    assert rec["stages"] == ["base"] and rec["evaluations"] == []
    assert rec["not_reused"] == {"dense": "dense.max_steps differs", "sgl": "dense was not reused", "teacher.npz": "dense was not reused",
                                 "sgl-pruned": "sgl was not reused"}
    (out / "dense").mkdir()
    (out / "dense" / "summary.json").write_text("its own")  # a later invocation: OUT trained its dense model
    rec = reuse_stages(src, out, CFG)
    assert rec["stages"] == ["base"] and rec["not_reused"]["sgl"] == "dense was not reused"
    assert (out / "dense" / "summary.json").read_text() == "its own"
    with pytest.raises(ValueError, match="is the --out folder itself"):
        reuse_stages(out, out, CFG)


def test_an_imp_variant_takes_the_ablation_and_the_pruned_model_and_its_evaluation(tmp_path):
    """A variant that changes only IMP (session 44: IMP's learning rate restarted each round) takes RUN's ablation
    record, pruned model and its test evaluation; one that changes a prune setting takes neither, and a resumed OUT
    whose pruned model is finished refuses a changed prune setting (it would not be computed again)."""
    from whisper_edge.reuse import check_resume

    src = _run(tmp_path / "src", CFG)
    (src / "ablation.json").write_text("{}")
    (src / "sgl-pruned" / "model").mkdir(parents=True)
    (src / "sgl-pruned" / "report.json").write_text("{}")
    (src / "results.json").write_text(json.dumps({"models": {n: {"wer": 1.0, "path": "x"} for n in ("dense", "sgl+adaptive", "imp")}}))
    out = tmp_path / "imp-variant"
    rec = reuse_stages(src, out, CFG | {"imp": {"rounds": 4}})
    assert rec["stages"] == ["base", "dense", "sgl", "teacher.npz", "ablation.json", "sgl-pruned"] and rec["not_reused"] == {}
    models = json.loads((out / "results.json").read_text())["models"]
    assert set(models) == {"dense", "sgl+adaptive"} and models["sgl+adaptive"]["path"] == str(out / "sgl-pruned" / "model")
    rec = reuse_stages(src, tmp_path / "v2", CFG | {"prune": CFG["prune"] | {"targets": [0.3]}})
    assert rec["not_reused"] == {"ablation.json": "prune.targets differs", "sgl-pruned": "ablation.json was not reused"}
    (out / "experiment.yaml").write_text(yaml.safe_dump(CFG))
    check_resume(out, CFG | {"imp": {"rounds": 2}})  # IMP may change on resume
    with pytest.raises(ValueError, match=r"finished stage ablation.json was made with other settings \(prune.targets: \[0.2, 0.3, 0.4, 0.5\]; this invocation: prune.targets: \[0.3\]\)"):
        check_resume(out, CFG | {"prune": CFG["prune"] | {"targets": [0.3]}})


def test_a_variant_takes_the_runs_dense_validation_wer_only_on_its_dense_model_and_clips(tmp_path):
    src = _run(tmp_path / "src", CFG)
    (src / "sgl-pruned").mkdir()
    (src / "sgl-pruned" / "reference.json").write_text(json.dumps({"val_wer": 7.12, "clips": 144, "source": "measured"}))
    out = tmp_path / "out"
    assert reused_reference(out, CFG) is None  # nothing reused yet
    reuse_stages(src, out, CFG | {"prune": CFG["prune"] | {"recover_lr": 3e-5}})
    wer, source = reused_reference(out, CFG)
    assert wer == 7.12 and str(src) in source
    assert reused_reference(out, CFG | {"prune": CFG["prune"] | {"eval_limit": 32}}) is None  # other clips
    other = tmp_path / "other"
    reuse_stages(src, other, CFG | {"dense": {"max_steps": 60}})  # its own dense model
    assert reused_reference(other, CFG | {"dense": {"max_steps": 60}}) is None


def test_another_seed_trains_its_own_dense_and_sgl_models_and_no_seed_means_the_default(tmp_path):
    src = _run(tmp_path / "src", CFG)  # written before `seed` existed: trained with seed 0
    rec = reuse_stages(src, tmp_path / "same", CFG | {"seed": 0})
    assert rec["stages"] == ["base", "dense", "sgl", "teacher.npz"]
    rec = reuse_stages(src, tmp_path / "other", CFG | {"seed": 1})
    assert rec["stages"] == ["base"] and rec["not_reused"]["dense"] == "seed differs"
    old = {k: v for k, v in CFG.items() if k != "start"}  # any top-level setting a run predates: it had the default
    src = _run(tmp_path / "older", old)
    assert reuse_stages(src, tmp_path / "start-dense", CFG)["stages"] == ["base", "dense", "sgl", "teacher.npz"]
    rec = reuse_stages(src, tmp_path / "start-base", CFG | {"start": "base"})
    assert rec["stages"] == ["base", "dense", "teacher.npz"] and rec["not_reused"]["sgl"] == "start differs"


def test_a_run_is_not_continued_with_settings_its_finished_stages_were_not_made_with(tmp_path, monkeypatch):
    from whisper_edge.reuse import check_resume

    cfg = CFG | {"data": "corpus"}
    out = _run(tmp_path / "out", cfg)  # dense, SGL and the teacher finished; written without `seed`
    check_resume(tmp_path / "new", CFG)  # a new folder: nothing to check
    monkeypatch.chdir(tmp_path)
    check_resume(out, CFG | {"data": str(tmp_path / "corpus"), "seed": 0, "imp": {"rounds": 4},
                             "prune": CFG["prune"] | {"distill_alpha": 0.25}})  # the same folder; later stages' settings
    with pytest.raises(ValueError, match=r"finished stage dense was made with other settings \(seed: 0.*seed: 1"):
        check_resume(out, cfg | {"seed": 1})
    with pytest.raises(ValueError, match="finished stage teacher.npz .*prune.teacher_top_k"):
        check_resume(out, cfg | {"prune": CFG["prune"] | {"teacher_top_k": 8}})
    assert yaml.safe_load((out / "experiment.yaml").read_text()) == cfg  # nothing written


def test_a_section_key_a_run_predates_reads_as_its_default(tmp_path):
    old = CFG | {"prune": {k: v for k, v in CFG["prune"].items() if k != "teacher_top_k"}}  # before teacher_top_k existed
    src = _run(tmp_path / "older", old)
    assert reuse_stages(src, tmp_path / "default", CFG)["stages"] == ["base", "dense", "sgl", "teacher.npz"]  # 16, the default
    rec = reuse_stages(src, tmp_path / "other", CFG | {"prune": CFG["prune"] | {"teacher_top_k": 32}})
    assert rec["stages"] == ["base", "dense", "sgl"] and rec["not_reused"]["teacher.npz"] == "prune.teacher_top_k differs"
