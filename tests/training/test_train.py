"""Training loop (Accelerate), resume, IMP, adaptive pruning and the CLI, on a tiny random Whisper."""

import copy
import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from whisper_edge.cli import main
from whisper_edge.training.architecture import architecture_of, load_checkpoint
from whisper_edge.training.pruning import AdaptiveOptions, adaptive_keep, prune_adaptive
from whisper_edge.training.recipes import RecipeError, load_recipe
from whisper_edge.training.train import imp_prune_, imp_schedule, prunable_weights, train

FAST = {"batch_size": 4, "eval_every": 0, "save_every": 1, "warmup_steps": 1, "max_label_tokens": 40}


def _rows(run):
    with open(run / "log.csv") as f:
        return list(csv.DictReader(f))


def test_resume_after_interruption_continues_at_the_right_step(tiny_model, speech_corpus, tmp_path):
    recipe = load_recipe("dense", FAST | {"max_steps": 4, "save_every": 2})
    run = tmp_path / "run"
    assert train(tiny_model, speech_corpus, recipe, run, stop_after=2) == {"stopped_at": 2}
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-2"]
    with open(run / "log.csv", "a") as f:  # a step logged after the last checkpoint by a run that was then killed
        f.write("3,0,9.9,,0.1,1.0,0,,,,,\n")
    summary = train(tiny_model, speech_corpus, recipe, run)
    assert summary["steps"] == 4
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-4"]  # finished: the newest state alone
    assert [int(r["step"]) for r in _rows(run)] == [1, 2, 3, 4]
    # the same run interrupted or not ends at the same weights
    straight = tmp_path / "straight"
    train(tiny_model, speech_corpus, recipe, straight)
    a, _ = load_checkpoint(run / "last")
    b, _ = load_checkpoint(straight / "last")
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-6), n
    with pytest.raises(ValueError, match="different recipe"):
        train(tiny_model, speech_corpus, load_recipe("dense", FAST | {"max_steps": 5}), run)


def test_a_recovery_stops_once_validation_is_within_the_bound_and_stays_finished(tiny_model, speech_corpus, tmp_path):
    recipe = load_recipe("dense", FAST | {"max_steps": 6, "eval_every": 2, "eval_limit": 2, "select": "best",
                                          "max_label_tokens": 16})
    run = tmp_path / "run"
    summary = train(tiny_model, speech_corpus, recipe, run, stop_at_wer=1e9)  # any WER is within: stop at the first check
    assert summary["steps"] == 2 and summary["stopped_early"] and summary["best_step"] == 2
    assert [int(r["step"]) for r in _rows(run)] == [1, 2] and (run / "model" / "config.json").is_file()
    again = train(tiny_model, speech_corpus, recipe, run, stop_at_wer=1e9)  # resumed: already finished, no step runs
    assert again["steps"] == 2 and len(_rows(run)) == 2
    never = train(tiny_model, speech_corpus, recipe, tmp_path / "never", stop_at_wer=-1.0)  # unreachable: runs to the end
    assert never["steps"] == 6 and not never["stopped_early"]


def test_two_process_cpu_accelerate_run(tiny_model, speech_corpus, tmp_path):
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29517",
           "-m", "whisper_edge", "train", "--model", str(tiny_model), "--data", str(speech_corpus), "--recipe", "dense",
           "--out", str(run), "--set", "max_steps=2", "--set", "eval_every=0", "--set", "batch_size=2",
           "--set", "max_label_tokens=40"]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["steps"] == 2
    assert (run / "checkpoints" / "step-2" / "random_states_1.pkl").is_file()


def test_sgl_run_then_adaptive_prune_removes_groups(tiny_model, speech_corpus, tmp_path, capsys):
    # a strong proximal SGL drives groups of the tiny model to zero within a few steps
    recipe = load_recipe("sgl", FAST | {"max_steps": 3, "learning_rate": 1e-3, "sgl.lambda_enc": 50.0, "sgl.lambda_dec": 50.0,
                                        "sgl.alpha": 0.0, "eval_every": 3, "eval_limit": 2})
    summary = train(tiny_model, speech_corpus, recipe, tmp_path / "sgl")
    assert summary["final_sparsity"]["zero_channels"] > 0
    rows = _rows(tmp_path / "sgl")
    assert rows[-1]["val_wer"] != "" and float(rows[0]["sgl_seconds"]) >= 0
    assert main(["prune", "--model", str(tmp_path / "sgl"), "--out", str(tmp_path / "pruned"), "--data", str(speech_corpus),
                 "--eval-limit", "2", "--recover-steps", "1", "--set", "learning_rate=1e-5"]) == 0
    report = json.loads((tmp_path / "pruned" / "report.json").read_text())
    sel = report["recovery_selection"]  # the recovered weights are kept only if they are not worse
    assert report["val_wer"] == min(sel["val_wer_before"], sel["val_wer_after"])
    assert sel["kept"] == ("recovered" if sel["val_wer_after"] <= sel["val_wer_before"] else "pruned")
    assert report["counts_after"]["params"]["total"] < report["counts_before"]["params"]["total"]
    model, _ = load_checkpoint(tmp_path / "pruned")  # the run folder resolves to model/
    arch = architecture_of(model)
    assert sum(l["ffn"] for l in arch.encoder + arch.decoder) < 4 * 256
    assert json.loads((tmp_path / "pruned" / "model" / "config.json").read_text())["whisper_edge"]["architecture"]
    assert main(["eval", "--model", str(tmp_path / "pruned"), "--data", str(speech_corpus), "--limit", "2"]) == 0
    assert main(["inspect", str(tmp_path / "pruned")]) == 0
    capsys.readouterr()
    assert main(["prune", "--model", str(tmp_path / "sgl"), "--out", str(tmp_path / "ablation"), "--data", str(speech_corpus),
                 "--ablation", "--eval-limit", "1"]) == 0
    rows = json.loads((tmp_path / "ablation" / "ablation.json").read_text())["rows"]
    assert [r["variant"] for r in rows][:4] == ["unpruned", "exact zeros only", "two passes, per-layer (the options given)",
                                                "two passes, per-layer, no compensation"]
    assert rows[2]["params"] == rows[3]["params"]  # compensation changes weights, not what is removed
    # the options given judge by obs (the CLI's default): the other two scores get a row each, obs none of its own
    assert len(rows) == 9 and [r["variant"] for r in rows][4:6] == ["two passes, per-layer, activation score",
                                                                   "two passes, per-layer, weight-RMS score"]
    assert rows[0]["removed_pct"] == 0 and all(r["removed_pct"] >= rows[1]["removed_pct"] for r in rows[2:])
    capsys.readouterr()
    assert main(["inspect", str(tmp_path / "sgl"), "--importance", str(speech_corpus), "--calib-batches", "1"]) == 0
    table = capsys.readouterr().out
    rows = [l for l in table.split("corr. with weight RMS")[1].splitlines() if l.startswith(("| encoder ", "| decoder "))]
    assert rows and all(l.count("|") == 7 for l in rows)


def test_adaptive_sgl_weights_are_measured_once_and_kept_across_resume(tiny_model, speech_corpus, tmp_path):
    recipe = load_recipe("sgl", FAST | {"max_steps": 3, "learning_rate": 1e-3, "sgl.lambda_enc": 5.0, "sgl.lambda_dec": 5.0,
                                        "sgl.gamma": 2.0, "sgl.calib_batches": 2})
    run = tmp_path / "asgl"
    assert train(tiny_model, speech_corpus, recipe, run, stop_after=1) == {"stopped_at": 1}
    saved = torch.load(run / "sgl_weights.pt")
    assert len(saved["weights"]) == len(saved["importance"]) == 2 * 2 + 2 * 3  # heads+ffn per encoder layer, self+cross+ffn per decoder layer
    stamp = os.stat(run / "sgl_weights.pt").st_mtime_ns
    summary = train(tiny_model, speech_corpus, recipe, run)  # resumes: the weights are read back, not measured again
    assert summary["steps"] == 3 and os.stat(run / "sgl_weights.pt").st_mtime_ns == stamp
    assert any(float(w.max()) > 1.0 for w in saved["weights"]) and any(float(w.min()) < 1.0 for w in saved["weights"])
    with pytest.raises(RecipeError, match="gamma"):
        load_recipe("sgl", {"sgl.gamma": -1.0})


def test_adaptive_rule_per_layer_two_passes(tiny_model):
    model, _ = load_checkpoint(tiny_model)
    with torch.no_grad():
        f = model.model.encoder.layers[0]
        f.fc1.weight[:10] *= 0.01  # far below the layer's median: pass 1
        f.fc1.weight[10:20] *= 0.6  # moderately weak: pass 2 after the statistics are recomputed
        f.fc2.weight[:, :20] *= 0.01
        f.fc2.weight[:, 10:20] *= 60
        # a layer mostly at a smaller scale: per-layer statistics leave it whole, pooled (global) ones cut it
        model.model.encoder.layers[1].fc1.weight[:200].mul_(0.1)
        model.model.encoder.layers[1].fc2.weight[:, :200].mul_(0.1)
    keep2, rep2 = adaptive_keep(model, AdaptiveOptions(k1=0.3, k2=1.2, score="rms"))
    keep1, _ = adaptive_keep(model, AdaptiveOptions(k1=0.3, passes=1, score="rms"))
    fam = next(r for r in rep2 if r["side"] == "encoder" and r["layer"] == 0 and r["kind"] == "ffn")
    assert fam["pass1"] == 10 and fam["pass2"] >= 5
    assert len(keep2["encoder"][0]["ffn"]) < len(keep1["encoder"][0]["ffn"]) == 246
    none = adaptive_keep(model, AdaptiveOptions(strength=0.0, score="rms"))[0]  # strength 0: only exact zeros go
    assert len(none["encoder"][0]["ffn"]) == 256
    glob = adaptive_keep(model, AdaptiveOptions(k1=0.3, passes=1, scope="global", score="rms"))[0]
    assert len(keep1["encoder"][1]["ffn"]) == 256 and len(glob["encoder"][1]["ffn"]) == 56
    pruned = copy.deepcopy(model)
    arch, _ = prune_adaptive(pruned, AdaptiveOptions(k1=0.3, k2=1.2, score="rms"))
    assert arch.encoder[0]["ffn"] == len(keep2["encoder"][0]["ffn"])


def test_activation_score_removes_silent_groups_that_weights_call_strong(tiny_model):
    """A channel with large weights that never activates (fc1 bias far negative) carries nothing: the
    activation score removes it, the weight-RMS score keeps it; the importance comes from real batches."""
    from whisper_edge.training.importance import group_importance

    model, _ = load_checkpoint(tiny_model)
    with torch.no_grad():
        f = model.model.encoder.layers[0]
        f.fc1.weight[:8] *= 3.0
        f.fc1.bias[:8] = -1e4  # gelu(-1e4) = 0: silent
        f.fc2.weight[:, :8] *= 3.0
    feats = torch.randn(2, 80, 2 * model.config.max_source_positions)
    labels = torch.tensor([[50259, 50276, 50359, 400, 500]] * 2)
    imp = group_importance(model, [{"input_features": feats, "labels": labels}])
    act, _ = adaptive_keep(model, AdaptiveOptions(k1=0.3, passes=1), imp)
    rms, _ = adaptive_keep(model, AdaptiveOptions(k1=0.3, passes=1, score="rms"))
    assert not set(range(8)) & set(act["encoder"][0]["ffn"])
    assert set(range(8)) <= set(rms["encoder"][0]["ffn"])
    with pytest.raises(ValueError, match="calibration data"):
        adaptive_keep(model, AdaptiveOptions())


def test_imp_prunes_to_target_and_keeps_masks(tiny_model, speech_corpus, tmp_path):
    model, _ = load_checkpoint(tiny_model)
    imp_prune_(model, 0.3)
    ws = prunable_weights(model)
    share = sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws)
    assert share == pytest.approx(0.3, abs=0.01)
    assert imp_schedule(0.35, 2, 10) == [(0, pytest.approx(1 - 0.65 ** 0.5)), (5, pytest.approx(0.35))]
    recipe = load_recipe("imp", FAST | {"max_steps": 4, "imp.rounds": 2, "imp.target_sparsity": 0.5})
    summary = train(tiny_model, speech_corpus, recipe, tmp_path / "imp")
    assert summary["final_sparsity"]["weight_sparsity"] == pytest.approx(0.5, abs=0.01)  # masks held while training


def test_imp_rounds_at_given_sparsities(tiny_model, speech_corpus, tmp_path):
    """imp.sparsities: each round prunes to its given share (the experiment matches IMP to the structured rounds)."""
    assert imp_schedule(0.35, 2, 12, [0.25, 0.45]) == [(0, 0.25), (6, 0.45)]
    recipe = load_recipe("imp", FAST | {"max_steps": 4, "imp.rounds": 2, "imp.sparsities": [0.2, 0.45], "eval_every": 2,
                                        "eval_limit": 2, "snapshot_every": 2})
    summary = train(tiny_model, speech_corpus, recipe, tmp_path / "imp")
    assert summary["final_sparsity"]["weight_sparsity"] == pytest.approx(0.45, abs=0.01)
    with open(tmp_path / "imp" / "log.csv", newline="") as f:
        at = {int(r["step"]): float(r["weight_sparsity"]) for r in csv.DictReader(f) if r.get("val_wer")}
    assert at[2] == pytest.approx(0.2, abs=0.01) and at[4] == pytest.approx(0.45, abs=0.01)
    # one model per round (snapshot_every): the experiment evaluates IMP's round matched to the structured one
    first, _ = load_checkpoint(tmp_path / "imp" / "snapshots" / "step-2")
    ws = prunable_weights(first)
    assert sum(int((w == 0).sum()) for w in ws) / sum(w.numel() for w in ws) == pytest.approx(0.2, abs=0.01)
    with pytest.raises(RecipeError, match="imp.sparsities"):
        load_recipe("imp", {"imp.sparsities": [0.5, 0.3]})


def test_recipe_errors_name_the_field(tmp_path):
    bad = tmp_path / "r.yaml"
    bad.write_text("method: sgl\nlearnin_rate: 0.1\n")
    with pytest.raises(RecipeError, match="learnin_rate"):
        load_recipe(bad)
    with pytest.raises(RecipeError, match="'batch_size'"):
        load_recipe("dense", {"batch_size": 0})
    with pytest.raises(RecipeError, match="sgl.alpha"):
        load_recipe("sgl", {"sgl.alpha": 2})
    with pytest.raises(RecipeError, match="sgl.lamda"):
        load_recipe("sgl", {"sgl.lamda": 2})
    with pytest.raises(RecipeError, match="max_steps must be int"):
        load_recipe("dense", {"max_steps": "many"})
    with pytest.raises(FileNotFoundError, match="dense, sgl, imp"):
        load_recipe("nope")
    assert main(["train", "--model", "x", "--data", "y", "--out", str(tmp_path / "o"), "--set", "foo=1"]) == 2


def test_a_process_keeps_the_built_in_recipes_it_first_read(tmp_path, monkeypatch):
    """An experiment runs for hours; a package upgraded (or edited) under it must not change — or break, with a field
    its Recipe class lacks — the recipe of its later stages. A recipe given as a file is read every time."""
    import shutil

    from whisper_edge.training import recipes

    builtin = tmp_path / "builtin"
    builtin.mkdir()
    for name in recipes.BUILTIN_RECIPES:
        shutil.copy(recipes.BUILTIN_DIR / f"{name}.yaml", builtin)
    monkeypatch.setattr(recipes, "BUILTIN_DIR", builtin)
    monkeypatch.setattr(recipes, "_BUILTIN_TEXT", {})
    monkeypatch.chdir(tmp_path)
    first = load_recipe("dense")
    for name in recipes.BUILTIN_RECIPES:  # a newer version's recipes, with a field this Recipe does not know
        with open(builtin / f"{name}.yaml", "a") as f:
            f.write("a_newer_field: 1\n")
    assert load_recipe("dense") == first
    assert load_recipe("imp").method == "imp"  # read with dense's, at the first
    with pytest.raises(RecipeError, match="a_newer_field"):
        load_recipe(builtin / "dense.yaml")


def test_set_overrides_read_numbers_as_numbers():
    from whisper_edge.commands import _overrides

    got = _overrides(["learning_rate=2e-5", "sgl.mode=loss", "max_steps=3", "audio_ctx=null"])
    assert got == {"learning_rate": 2e-5, "sgl.mode": "loss", "max_steps": 3, "audio_ctx": None}
    assert load_recipe("dense", got).learning_rate == 2e-5
    with pytest.raises(ValueError, match="key=value"):
        _overrides(["learning_rate"])


def test_imp_uneven_rounds_validate_and_keep_each_round_end(tiny_model, speech_corpus, tmp_path):
    """imp.round_steps: rounds of different lengths (the experiment gives IMP the gradual rounds' steps); eval_at and
    snapshot_at validate and keep the model at each round's end."""
    assert imp_schedule(0.35, 3, 9, [0.2, 0.3, 0.4], [2, 5, 2]) == [(0, 0.2), (2, 0.3), (7, 0.4)]
    recipe = load_recipe("imp", FAST | {"max_steps": 4, "imp.rounds": 2, "imp.sparsities": [0.2, 0.45],
                                        "imp.round_steps": [1, 3], "eval_every": 0, "eval_at": [1, 4],
                                        "snapshot_at": [1, 4], "eval_limit": 2})
    train(tiny_model, speech_corpus, recipe, tmp_path / "imp")
    with open(tmp_path / "imp" / "log.csv", newline="") as f:
        at = {int(r["step"]): float(r["weight_sparsity"]) for r in csv.DictReader(f) if r.get("val_wer")}
    assert sorted(at) == [1, 4] and at[1] == pytest.approx(0.2, abs=0.01) and at[4] == pytest.approx(0.45, abs=0.01)
    assert sorted(p.name for p in (tmp_path / "imp" / "snapshots").iterdir()) == ["step-1", "step-4"]
    with pytest.raises(RecipeError, match="add up to 5 steps, but max_steps is 4"):
        load_recipe("imp", {"max_steps": 4, "imp.sparsities": [0.2, 0.45], "imp.round_steps": [2, 3]})
    with pytest.raises(RecipeError, match="one step count"):
        load_recipe("imp", {"max_steps": 4, "imp.sparsities": [0.2, 0.45], "imp.round_steps": [4]})
    with pytest.raises(RecipeError, match="eval_at"):
        load_recipe("imp", {"max_steps": 4, "eval_at": [5]})


def test_imp_rounds_restart_the_learning_rate_as_each_structured_round_does(tiny_model, speech_corpus, tmp_path):
    """imp.lr_per_round (the experiment's IMP, session 44): each IMP round warms up and decays to 0 as a structured round
    of the same length does as its own run; before it, rounds 3–4 of runs/paper26's IMP trained at lr ≈ 0."""
    from whisper_edge.training.gradual import recovery_recipe
    from whisper_edge.training.imp import lr_factor

    rounds, warmup = [40, 280, 30, 30], 5  # runs/paper26's IMP rounds
    starts = [s for s, _ in imp_schedule(0.55, 4, sum(rounds), [0.25, 0.35, 0.45, 0.55], rounds)]
    for start, n in zip(starts, rounds):
        alone = recovery_recipe(n)  # the structured round's own run
        assert [lr_factor(start + i, sum(rounds), warmup, starts) for i in range(n)] == \
            [lr_factor(i, n, alone.warmup_steps) for i in range(n)]
        assert lr_factor(start, sum(rounds), warmup, starts) == pytest.approx(1 / 6)  # warming up again
    assert lr_factor(321, sum(rounds), warmup) < 0.16 < lr_factor(321, sum(rounds), warmup, starts)  # round 3, 2nd step
    recipe = load_recipe("imp", FAST | {"max_steps": 5, "imp.rounds": 2, "imp.sparsities": [0.2, 0.45],
                                        "imp.round_steps": [2, 3], "imp.lr_per_round": True, "learning_rate": 1e-4})
    train(tiny_model, speech_corpus, recipe, tmp_path / "imp")
    with open(tmp_path / "imp" / "log.csv", newline="") as f:
        lrs = [float(r["lr"]) for r in csv.DictReader(f)]
    assert lrs == pytest.approx([1e-4, 5e-5, 1e-4, 1e-4 * 2 / 3, 1e-4 / 3], rel=1e-4)  # round 2 starts again at the full rate


def test_a_checkpoint_that_cannot_be_written_says_why_and_leaves_no_partial_folder(tmp_path):
    """A full disk surfaced as torch's "[enforce fail …] unexpected pos" (seen in session 11): the half-written
    checkpoint is removed and the error names the checkpoint, the free space and how to resume."""
    from whisper_edge.training.train import _save_state

    class Accelerator:
        is_main_process = True

        def wait_for_everyone(self):
            pass

        def save_state(self, path):
            (Path(path) / "model.safetensors").write_bytes(b"partial")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 74447424 vs 74447316")

    root = tmp_path / "checkpoints"
    with pytest.raises(OSError, match=r"step-5 .*MiB free on its disk.*run the same command again"):
        _save_state(Accelerator(), root, {"step": 5}, keep=2)
    assert list(root.iterdir()) == []
