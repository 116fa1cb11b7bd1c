"""Least-squares compensation at prune time (issue 16): the closed form equals a direct solve, and on a real
(tiny) model it brings each pruned sublayer's output closer to the unpruned one than dropping does."""

from __future__ import annotations

import copy

import pytest
import torch

from whisper_edge.training.compensation import compensate_, input_grams, solve_compensation


def test_closed_form_equals_a_direct_least_squares_solve():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(400, 12, generator=g, dtype=torch.float64) * torch.linspace(0.2, 3, 12, dtype=torch.float64)
    X[:, 3] += 0.8 * X[:, 7]  # correlated inputs: the kept columns can take over part of the removed ones
    lin = torch.nn.Linear(12, 5).double()
    Z = torch.cat([X, torch.ones(400, 1, dtype=torch.float64)], 1)
    gram = Z.T @ Z
    kept = torch.tensor([0, 1, 3, 4, 9])
    W_k, b = solve_compensation(gram, lin.weight, lin.bias, kept, ridge=0.0)
    Y = lin(X).detach()
    A = torch.cat([X[:, kept], torch.ones(400, 1, dtype=torch.float64)], 1)
    direct = torch.linalg.lstsq(A, Y).solution  # (k+1, out)
    assert torch.allclose(W_k, direct[:-1].T, atol=1e-8)
    assert torch.allclose(b, direct[-1], atol=1e-8)
    # a huge ridge pins the kept weights to the originals
    W_r, _ = solve_compensation(gram, lin.weight, lin.bias, kept, ridge=1e9)
    assert torch.allclose(W_r, lin.weight.detach()[:, kept], atol=1e-4)


def test_compensation_reduces_every_pruned_sublayers_error(tiny_model, speech_corpus):
    from whisper_edge.training.architecture import apply_surgery, load_checkpoint
    from whisper_edge.training.data import load_speech_dataset
    from whisper_edge.training.importance import calibration_batches

    model, processor = load_checkpoint(tiny_model)
    batches = calibration_batches(processor, load_speech_dataset(speech_corpus, "train"), n_batches=2, batch_size=4,
                                  audio_ctx=model.config.max_source_positions)
    grams = input_grams(model, batches)
    keep = {"encoder": [{"heads": [1], "ffn": list(range(0, 256, 2))}, {}],
            "decoder": [{"ffn": list(range(100))}, {"cross_heads": [0]}]}
    pruned = copy.deepcopy(model)
    report = compensate_(pruned, keep, grams, ridge=1e-3)
    assert len(report) == 4
    for r in report:
        assert r["error_compensated"] < r["error_dropped"], r
    apply_surgery(pruned, keep)
    assert pruned.model.encoder.layers[0].fc2.in_features == 128

    # the measured output of encoder layer 0's FFN is closer to the unpruned one than without compensation
    def ffn_out(m, feats):
        out = {}
        h = m.model.encoder.layers[0].fc2.register_forward_hook(lambda mod, a, o: out.setdefault("y", o))
        with torch.no_grad():
            m.model.encoder(feats)
        h.remove()
        return out["y"]

    feats = batches[0]["input_features"]
    ref = ffn_out(model, feats)
    plain = copy.deepcopy(model)
    apply_surgery(plain, keep)
    err_plain = (ffn_out(plain, feats) - ref).norm()
    err_comp = (ffn_out(pruned, feats) - ref).norm()
    assert err_comp < err_plain


def test_bootstrap_interval_covers_the_difference_and_refuses_mismatches():
    from whisper_edge.runtime.metrics import paired_bootstrap, utterance_errors

    refs = ["मेरा नाम राम है", "आज मौसम अच्छा है", "हम कल जाएँगे", "यह किताब नई है"] * 10
    a = utterance_errors(refs, refs)
    b = utterance_errors(refs, ["मेरा नाम श्याम है", "आज मौसम अच्छा है", "हम कल जाएँगे", "यह किताब है"] * 10)
    ci = paired_bootstrap(a, b)
    assert ci["diff"] == pytest.approx(100 * 20 / 150)
    assert ci["lo"] <= ci["diff"] <= ci["hi"] and ci["lo"] > 0
    with pytest.raises(ValueError, match="same non-empty"):
        paired_bootstrap(a, b[:-1])


def test_recipe_reads_a_bare_no_and_auto_picks_bf16_only_where_native(monkeypatch):
    from whisper_edge.training import precision as train_mod
    from whisper_edge.training.recipes import load_recipe

    assert load_recipe("dense", {"mixed_precision": False}).mixed_precision == "no"
    monkeypatch.setattr(train_mod.torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(train_mod, "cpu_has_bf16", lambda: True)
    assert train_mod.mixed_precision("auto") == "bf16"
    monkeypatch.setattr(train_mod, "cpu_has_bf16", lambda: False)
    assert train_mod.mixed_precision("auto") == "no"
    assert train_mod.mixed_precision("no") == "no"


def test_gentle_sgl_leaves_the_important_groups_unpenalized():
    from whisper_edge.training.importance import adaptive_weights

    imp = [torch.tensor([0.1, 1.0, 2.0, 4.0]), torch.tensor([3.0, 0.5, 1.5])]
    ws = adaptive_weights(imp, gamma=2.0, w_max=50.0, protect_quantile=0.5)
    for w, i in zip(ws, imp):
        assert torch.all(w[i >= torch.quantile(i, 0.5)] == 0)
        assert torch.all(w[i < torch.quantile(i, 0.5)] > 0)
    assert ws[0][0] > ws[0][1] > 0  # the least important is penalized hardest


def test_calibration_on_augmented_audio_is_seeded_and_differs_from_clean(tiny_model, speech_corpus):
    """AdaptiveOptions.calib_augment: the calibration clips hear the dense recipe's augmentation, one seeded draw
    each — the same draw every time, and not the clean clips."""
    from whisper_edge.training.architecture import load_checkpoint
    from whisper_edge.training.importance import data_calibration_batches
    from whisper_edge.training.recipes import load_recipe

    model, processor = load_checkpoint(tiny_model)
    aug = load_recipe("dense").augment
    clean = data_calibration_batches(model, processor, speech_corpus, 1)
    a = data_calibration_batches(model, processor, speech_corpus, 1, augment=aug)
    b = data_calibration_batches(model, processor, speech_corpus, 1, augment=aug)
    assert torch.equal(a[0]["input_features"], b[0]["input_features"])
    assert not torch.allclose(a[0]["input_features"], clean[0]["input_features"])
    assert torch.equal(a[0]["labels"], clean[0]["labels"])  # the same sentences, heard differently


def test_calibration_windows_can_hold_several_clips(tiny_model, speech_corpus):
    """AdaptiveOptions.calib_concat: windows of 2–3 clips joined in order, transcripts joined, never over the window."""
    import random

    import numpy as np

    from whisper_edge.training.architecture import load_checkpoint
    from whisper_edge.training.importance import _join, data_calibration_batches

    items = [(np.full(16000 * (1 + k % 3), k, np.float32), f"s{k}") for k in range(9)]
    joined = _join(items, 1.0, 16000 * 6, random.Random(0))
    assert " ".join(t for _, t in joined) == " ".join(t for _, t in items) and len(joined) < len(items)
    assert all(len(w) <= 16000 * 6 for w, _ in joined) and any(len(t.split()) > 1 for _, t in joined)
    for w, t in joined:  # each window is its clips in order with silence between
        assert [int(v) for v in np.unique(w[w > 0])] == [int(x[1:]) for x in t.split() if x != "s0"]
    assert _join(items, 0.0, 16000 * 6, random.Random(0)) == items
    model, processor = load_checkpoint(tiny_model)
    plain = data_calibration_batches(model, processor, speech_corpus, 1)
    full = data_calibration_batches(model, processor, speech_corpus, 1, concat=1.0)
    words = [(b[0]["labels"] != -100).sum(1).float().mean() for b in (plain, full)]
    assert len(full[0]["labels"]) <= len(plain[0]["labels"]) and words[1] > words[0]  # more words per window
    with pytest.raises(ValueError, match="calib_concat"):
        from whisper_edge.training.pruning import AdaptiveOptions

        AdaptiveOptions(calib_concat=1.5)


def test_noisy_validation_copy_keeps_the_sentences(speech_corpus):
    import numpy as np

    from whisper_edge.training.data import load_speech_dataset, noisy_copy, row_audio

    val = load_speech_dataset(speech_corpus, "validation")
    noisy, again = noisy_copy(val), noisy_copy(val)
    assert noisy["sentence"] == val["sentence"]
    x, y = row_audio(val[0]["audio"]), row_audio(noisy[0]["audio"])
    assert len(x) == len(y) and not np.allclose(x, y, atol=1e-3)
    assert np.array_equal(y, row_audio(again[0]["audio"]))  # seeded


def test_removal_ablation_command_clean_and_noisy(tiny_model, speech_corpus, tmp_path, capsys):
    """`whisper-edge prune --removal-ablation SHARE`: each variant's validation WER, clean and under the test_noisy
    effects, with the augmented calibration as a variant; a rerun measures nothing again."""
    import json

    from whisper_edge.cli import main

    argv = ["prune", "--model", str(tiny_model), "--data", str(speech_corpus), "--out", str(tmp_path / "abl"),
            "--removal-ablation", "0.2", "--noisy-validation", "--calib-augment", "--eval-limit", "2", "--calib-batches", "1"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "noisy validation WER % |" in text and "| compensation, calibration on augmented audio | " in text
    rows = json.loads((tmp_path / "abl" / "ablation.json").read_text())["rows"]
    assert [r["variant"] for r in rows] == ["dense, unpruned", "no compensation", "compensation",
                                            "compensation, calibration on augmented audio"]
    assert all("val_wer_noisy" in r for r in rows) and rows[3]["share"] >= 0.2
    mtime = (tmp_path / "abl" / "rows.json").stat().st_mtime
    assert main(argv) == 0
    assert (tmp_path / "abl" / "rows.json").stat().st_mtime == mtime
    # with an SGL model's choice (here the same model): its variants are added, the rows measured before are kept
    assert main(argv + ["--sgl", str(tiny_model)]) == 0
    rows2 = json.loads((tmp_path / "abl" / "ablation.json").read_text())["rows"]
    assert rows2[:4] == rows and [r["variant"] for r in rows2[4:]] == [
        "SGL's groups, dense weights, compensation", "SGL model (its groups and weights), compensation",
        "SGL's groups, dense weights, compensation, calibration on augmented audio"]
    # --compare-score: the removal by the other score, calibrated as the ablation's augmented rows; the score the rows
    # already use (obs, the default) adds nothing
    assert main(argv + ["--compare-score", "obs"]) == 0
    assert json.loads((tmp_path / "abl" / "ablation.json").read_text())["rows"] == rows2
    assert main(argv + ["--compare-score", "activation"]) == 0
    rows3 = json.loads((tmp_path / "abl" / "ablation.json").read_text())["rows"]
    assert rows3[:7] == rows2 and [r["variant"] for r in rows3[7:]] == [
        "compensation, activation score, calibration on augmented audio"]
    assert rows3[7]["share"] >= 0.2 and "val_wer_noisy" in rows3[7]
    # --calib-concat SHARE: the removal calibrated on windows of joined clips, one more row
    assert main(argv + ["--calib-concat", "1.0"]) == 0
    rows4 = json.loads((tmp_path / "abl" / "ablation.json").read_text())["rows"]
    assert rows4[:8] == rows3 and [r["variant"] for r in rows4[8:]] == ["compensation, calibration with 100% joined windows"]
    assert rows4[8]["share"] >= 0.2


def test_ablation_table_has_a_long_window_column_when_measured():
    from whisper_edge.results import ablation_table

    rows = [{"variant": "dense, unpruned", "share": 0.0, "val_wer": 8.5, "val_wer_long": 9.25},
            {"variant": "compensation", "share": 0.35, "val_wer": 9.0, "val_wer_long": 11.5}]
    table = ablation_table(rows)
    assert table[0].endswith("| long-window validation WER % |") and table[3] == "| compensation | 35.0 % | 9.00 | 11.50 |"
    assert "long" not in ablation_table([{k: v for k, v in r.items() if k != "val_wer_long"} for r in rows])[0]

