"""`whisper-edge compare`: several experiment runs pooled (whisper_edge/pooled.py, runtime/metrics.pooled_bootstrap)."""
import json
from pathlib import Path

import pytest

from whisper_edge.runtime.metrics import paired_bootstrap, pooled_bootstrap


def _errors(n_words, errs):
    return [(e, n_words) for e in errs]


def test_pooled_bootstrap_means_the_runs_and_shares_draws_only_over_one_split():
    a = _errors(5, [0, 1, 0, 0] * 10)
    b1 = _errors(5, [1, 1, 0, 0] * 10)  # +5 points
    b2 = _errors(5, [1, 2, 1, 0] * 10)  # +15 points
    ids = [f"u{i}" for i in range(40)]
    one = pooled_bootstrap([(a, b1)], [ids])
    assert one["diff"] == pytest.approx(paired_bootstrap(a, b1)["diff"]) == pytest.approx(5.0)
    both = pooled_bootstrap([(a, b1), (a, b2)], [ids, ids])
    assert both["per_run"] == pytest.approx([5.0, 15.0]) and both["diff"] == pytest.approx(10.0)
    assert both["joint"] and both["lo"] <= both["diff"] <= both["hi"] and both["lo"] > 5.0
    other = pooled_bootstrap([(a, b1), (a, b2)], [ids, ids[::-1]])
    assert not other["joint"] and other["diff"] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="same non-empty"):
        pooled_bootstrap([(a, b1[:-1])])
    with pytest.raises(ValueError, match="different references"):
        pooled_bootstrap([(a, _errors(6, [0] * 40))])
    with pytest.raises(ValueError, match="at least one run"):
        pooled_bootstrap([])


def _rows(errs, words=4):
    return [[f"u{i}", e, words] for i, e in enumerate(errs)]


def _run(tmp_path, name, dense_errs, pruned_errs, imp_errs, long=True):
    arch = {"format": 1, "head_dim": 64, "d_model": 512, "audio_ctx": 500,
            "encoder": [{"heads": 8, "ffn": 2048}] * 2, "decoder": [{"self_heads": 8, "cross_heads": 8, "ffn": 2048}] * 2}
    small = arch | {"encoder": [{"heads": 6, "ffn": 1024}] * 2,
                    "decoder": [{"self_heads": 6, "cross_heads": 6, "ffn": 1024}] * 2}

    def model(errs, a, nonzero=1000):
        m = {"per_utterance": _rows(errs), "architecture": a, "params": {"total": 1000, "nonzero": nonzero}}
        if long:
            m["splits"] = {"test_long": {"per_utterance": _rows(errs)}}
        return m

    out = tmp_path / name
    out.mkdir()
    models = {"dense": model(dense_errs, arch), "sgl+adaptive": model(pruned_errs, small),
              "imp": model(imp_errs, arch, nonzero=900)}
    (out / "results.json").write_text(json.dumps({"models": models}))
    return out


def test_compare_pools_each_runs_difference_from_its_own_reference(tmp_path):
    from whisper_edge.pooled import pool_runs, pooled_table

    r1 = _run(tmp_path, "r1", [0] * 20, [1] + [0] * 19, [0] * 20)            # +1.25 points (1 error in 80 words)
    r2 = _run(tmp_path, "r2", [1] * 20, [1] * 19 + [4], [1] * 20, long=False)  # +3.75 points
    res2 = json.loads((r2 / "results.json").read_text())  # the same utterances scored in another order
    res2["models"]["dense"]["per_utterance"].reverse()
    (r2 / "results.json").write_text(json.dumps(res2))
    got = pool_runs([r1, r2])
    rows = {(r["model"], r["split"]): r for r in got["rows"]}
    test = rows[("sgl+adaptive", "test")]
    assert test["per_run"] == pytest.approx([1.25, 3.75]) and test["diff"] == pytest.approx(2.5) and test["joint"]
    imp_removed = rows[("imp", "test")]["removed"][0]  # IMP removes nothing: its zeros are counted (100 of them)
    assert 0 < imp_removed < 1 < test["removed"][0] < 100
    assert rows[("sgl+adaptive", "test_long")]["runs"] == [str(r1)]  # r2 has no test_long: left out of that row
    assert ("sgl", "test") not in rows and ("sgl+adaptive", "test_noisy") not in rows
    vs_imp = {(r["model"], r["split"]): r for r in pool_runs([r1, r2], ("test",), against="imp")["rows"]}
    assert set(vs_imp) == {("sgl+adaptive", "test")} and vs_imp[("sgl+adaptive", "test")]["diff"] == pytest.approx(2.5)
    table = pooled_table(got)
    assert "+2.50 [" in table and "own dense model" in table and str(r2) in table


def test_one_runs_compare_interval_is_the_one_results_md_prints_whatever_the_stored_order(tmp_path):
    from whisper_edge.pooled import pool_runs
    from whisper_edge.results import _diff_text

    rng = __import__("random").Random(3)
    dense = _rows([rng.randrange(3) for _ in range(60)])
    pruned = _rows([rng.randrange(4) for _ in range(60)])
    shuffled = list(pruned)
    rng.shuffle(shuffled)  # results.json keeps each model's rows in the order they were scored
    text = _diff_text({"per_utterance": dense}, {"per_utterance": shuffled})
    assert text == _diff_text({"per_utterance": list(reversed(dense))}, {"per_utterance": pruned})
    run = tmp_path / "results.json"
    run.write_text(json.dumps({"models": {"dense": {"per_utterance": dense}, "sgl+adaptive": {"per_utterance": shuffled}}}))
    row = pool_runs([run], ("test",))["rows"][0]
    assert text == f" (difference {row['diff']:+.2f}, 95 % CI [{row['lo']:+.2f}, {row['hi']:+.2f}])"


def test_compare_refuses_what_is_not_a_finished_run_and_writes_no_folder(tmp_path, capsys):
    from whisper_edge.cli import main
    from whisper_edge.pooled import pool_runs

    with pytest.raises(FileNotFoundError, match="no results.json"):
        pool_runs([tmp_path / "missing"])
    half = tmp_path / "half"
    half.mkdir()
    (half / "results.json").write_text(json.dumps({"models": {}}))
    with pytest.raises(ValueError, match="no dense model"):
        pool_runs([half])
    r1 = _run(tmp_path, "r1", [0] * 20, [1] + [0] * 19, [0] * 20)
    assert main(["compare", str(r1), "--out", str(tmp_path)]) == 2
    assert "is a folder" in capsys.readouterr().err
    assert main(["compare", str(r1), "--out", str(tmp_path / "pooled.md"), "--splits", "test"]) == 0
    assert "| sgl+adaptive | test | 1 |" in (tmp_path / "pooled.md").read_text()
    assert json.loads((tmp_path / "pooled.json").read_text())["rows"][0]["per_run"] == pytest.approx([1.25])


def test_the_stored_run_records_pool_to_the_figures_the_docs_print():
    """README and docs/results.md (sessions 28, 30, 35, 36) quote `whisper-edge compare` on the records kept in the repository."""
    from pathlib import Path

    from whisper_edge.pooled import pool_runs

    def row(pooled):
        return next(r for r in pooled["rows"] if r["model"] == "sgl+adaptive" and r["split"] == "test+extra_test")

    records = Path(__file__).resolve().parents[1] / "docs" / "run-records"
    runs = [records / f"paper{n}-results.json" for n in (17, 18, 19, 20)]
    four = row(pool_runs(runs))  # session 30's
    assert len(four["runs"]) == 4 and four["joint"]
    assert [round(x, 2) for x in four["per_run"]] == [0.29, 0.37, 0.71, 0.50]
    assert [round(four[k], 2) for k in ("diff", "lo", "hi", "runs_lo", "runs_hi")] == [0.47, 0.15, 0.78, 0.18, 0.76]
    three = row(pool_runs(runs[:3]))  # session 28's
    assert [round(three[k], 2) for k in ("diff", "lo", "hi", "runs_lo", "runs_hi")] == [0.46, 0.13, 0.80, -0.09, 1.01]
    two = row(pool_runs(runs[:2]))
    assert [round(two[k], 2) for k in ("diff", "lo", "hi")] == [0.33, -0.05, 0.73] and "runs_lo" not in two  # session 27's
    imp = next(r for r in pool_runs(runs[2:3], ("test+extra_test",), against="imp")["rows"] if r["model"] == "sgl+adaptive")
    assert [round(imp[k], 2) for k in ("diff", "lo", "hi")] == [0.31, -0.21, 0.83]  # structured against IMP, runs/paper19
    imp2 = next(r for r in pool_runs(runs[2:4], ("test+extra_test",), against="imp")["rows"] if r["model"] == "sgl+adaptive")
    assert [round(x, 2) for x in imp2["per_run"]] == [0.31, 0.14]  # and runs/paper20 (session 31)
    assert [round(imp2[k], 2) for k in ("diff", "lo", "hi")] == [0.22, -0.21, 0.65]
    a25 = row(pool_runs([records / "paper20-a25-results.json", records / "paper22-results.json"]))  # session 36's
    assert [round(x, 2) for x in a25["per_run"]] == [0.37, 0.40]
    assert [round(a25[k], 2) for k in ("diff", "lo", "hi")] == [0.39, 0.02, 0.75]
    from whisper_edge.runtime.metrics import paired_by_id  # session 35: runs/paper21 on the 600 extra-validation clips

    xval = json.loads((records / "paper21-extra-validation.json").read_text())["models"]
    c = paired_by_id(xval["dense"]["per_utterance"], xval["sgl+adaptive"]["per_utterance"])
    assert c["utterances"] == 600 and [round(c[k], 2) for k in ("diff", "lo", "hi")] == [0.55, 0.04, 1.12]
    # session 37: runs/paper22's rounds again with `ema: 0.95` (same dense model, same seed), on the same 600 clips
    plain = json.loads((records / "paper22-extra-validation.json").read_text())["models"]
    ema = json.loads((records / "paper22-ema-extra-validation.json").read_text())["models"]
    assert plain["dense"]["per_utterance"] == ema["dense"]["per_utterance"]  # one dense model, read once
    e = paired_by_id(ema["dense"]["per_utterance"], ema["sgl+adaptive"]["per_utterance"])
    assert [round(e[k], 2) for k in ("diff", "lo", "hi")] == [-0.16, -0.73, 0.41]
    d = paired_by_id(plain["sgl+adaptive"]["per_utterance"], ema["sgl+adaptive"]["per_utterance"])
    assert [round(d[k], 2) for k in ("diff", "lo", "hi")] == [-0.04, -0.24, 0.14]
    s1 = json.loads((records / "paper22-ema-s1-extra-validation.json").read_text())["models"]  # the same, recover seed 1
    f = paired_by_id(s1["dense"]["per_utterance"], s1["sgl+adaptive"]["per_utterance"])
    assert [round(f[k], 2) for k in ("diff", "lo", "hi")] == [0.49, -0.08, 1.08]
    g = paired_by_id(ema["sgl+adaptive"]["per_utterance"], s1["sgl+adaptive"]["per_utterance"])  # draw against draw
    assert [round(g[k], 2) for k in ("diff", "lo", "hi")] == [0.65, 0.17, 1.15]
    # session 38: that draw's last weights (step 140) against the kept ones (step 80, best of four readings on 144 clips)
    lk = json.loads((records / "paper22-ema-s1-last-vs-kept.json").read_text())["models"]
    assert lk["kept"]["per_utterance"] == s1["sgl+adaptive"]["per_utterance"]  # the same weights, read again
    h = paired_by_id(lk["kept"]["per_utterance"], lk["last"]["per_utterance"])
    assert [round(h[k], 2) for k in ("diff", "lo", "hi")] == [-0.24, -0.60, 0.10]
    # session 38: runs/paper22's rounds with round 2 recovered 280 steps instead of 140 (same dense model and seed)
    r280 = json.loads((records / "paper22-r280-extra-validation.json").read_text())["models"]
    assert r280["dense"]["per_utterance"] == plain["dense"]["per_utterance"]
    m = paired_by_id(r280["dense"]["per_utterance"], r280["sgl+adaptive"]["per_utterance"])
    assert [round(m[k], 2) for k in ("diff", "lo", "hi")] == [-0.14, -0.70, 0.40]
    n = paired_by_id(plain["sgl+adaptive"]["per_utterance"], r280["sgl+adaptive"]["per_utterance"])
    assert [round(n[k], 2) for k in ("diff", "lo", "hi")] == [-0.02, -0.35, 0.30]
    last = r280["sgl+adaptive, last (step 280)"]["per_utterance"]  # the run kept step 200 (best of seven readings)
    o = paired_by_id(r280["sgl+adaptive"]["per_utterance"], last)
    assert [round(o[k], 2) for k in ("diff", "lo", "hi")] == [-0.18, -0.45, 0.10]
    q = paired_by_id(plain["sgl+adaptive"]["per_utterance"], last)
    assert [round(q[k], 2) for k in ("diff", "lo", "hi")] == [-0.20, -0.51, 0.10]
    # session 38: a plain seed-1 draw that keeps its last weights (recover_set select: last)
    sl = json.loads((records / "paper22-s1-last-extra-validation.json").read_text())["models"]
    assert sl["dense"]["per_utterance"] == plain["dense"]["per_utterance"]
    t = paired_by_id(sl["dense"]["per_utterance"], sl["sgl+adaptive"]["per_utterance"])
    assert [round(t[k], 2) for k in ("diff", "lo", "hi")] == [0.24, -0.33, 0.81]
    u = paired_by_id(plain["sgl+adaptive"]["per_utterance"], sl["sgl+adaptive"]["per_utterance"])  # seed 1 against seed 2
    assert [round(u[k], 2) for k in ("diff", "lo", "hi")] == [0.35, -0.08, 0.82]
    v = paired_by_id(lk["last"]["per_utterance"], sl["sgl+adaptive"]["per_utterance"])  # without ema against with it
    assert [round(v[k], 2) for k in ("diff", "lo", "hi")] == [-0.02, -0.16, 0.12]
    # session 39: the two last-against-kept pairs pooled — the validation reading that chose recover_set's select: last
    from whisper_edge.runtime.metrics import matched_errors

    pairs = [matched_errors(lk["kept"]["per_utterance"], lk["last"]["per_utterance"]),
             matched_errors(r280["sgl+adaptive"]["per_utterance"], last)]
    w = pooled_bootstrap([p[:2] for p in pairs], [p[2] for p in pairs])
    assert w["joint"] and [round(x, 2) for x in w["per_run"]] == [-0.24, -0.18]
    assert [round(w[k], 2) for k in ("diff", "lo", "hi")] == [-0.21, -0.43, 0.01]
    # session 39: that seed-1 draw read on test, once, after the recipe took select: last (runs/paper22's seed-2 round
    # had kept its last weights too, so both are the recipe's draws on one dense model)
    s1t = records / "paper22-s1-last-results.json"
    assert [round(row(pool_runs([s1t]))[k], 2) for k in ("diff", "lo", "hi")] == [0.12, -0.34, 0.58]
    both = row(pool_runs([records / "paper22-results.json", s1t]))
    assert [round(both[k], 2) for k in ("diff", "lo", "hi")] == [0.26, -0.16, 0.68]
    three = row(pool_runs([records / "paper20-a25-results.json", records / "paper22-results.json", s1t]))
    assert [round(x, 2) for x in three["per_run"]] == [0.37, 0.40, 0.12]
    assert [round(three[k], 2) for k in ("diff", "lo", "hi", "runs_lo", "runs_hi")] == [0.30, -0.04, 0.65, -0.08, 0.68]
    # session 40: the seed-3 replication from scratch (runs/paper23, the recipe as it stands), read on test once
    p23 = records / "paper23-results.json"
    assert [round(row(pool_runs([p23]))[k], 2) for k in ("diff", "lo", "hi")] == [0.11, -0.41, 0.59]
    four = row(pool_runs([records / "paper20-a25-results.json", records / "paper22-results.json", s1t, p23]))
    assert [round(four[k], 2) for k in ("diff", "lo", "hi", "runs_lo", "runs_hi")] == [0.25, -0.04, 0.54, 0.00, 0.50]
    apart = row(pool_runs([records / "paper20-a25-results.json", records / "paper22-results.json", p23]))  # 3 dense models
    assert [round(apart[k], 2) for k in ("diff", "lo", "hi", "runs_lo", "runs_hi")] == [0.29, -0.03, 0.59, -0.11, 0.70]
    xv = json.loads((records / "paper23-extra-validation.json").read_text())["models"]
    a = paired_by_id(xv["dense"]["per_utterance"], xv["sgl+adaptive"]["per_utterance"])
    assert [round(a[k], 2) for k in ("diff", "lo", "hi")] == [0.41, -0.10, 0.98]
    # session 39: 280 recovery steps on seed 1 too (last weights), against 140 on each seed — the recipe stays at 140
    s1r = json.loads((records / "paper22-s1-r280-extra-validation.json").read_text())["models"]
    assert s1r["dense"]["per_utterance"] == plain["dense"]["per_utterance"]
    x = paired_by_id(sl["sgl+adaptive"]["per_utterance"], s1r["sgl+adaptive"]["per_utterance"])
    assert [round(x[k], 2) for k in ("diff", "lo", "hi")] == [-0.16, -0.43, 0.10]
    pairs = [matched_errors(plain["sgl+adaptive"]["per_utterance"], last),
             matched_errors(sl["sgl+adaptive"]["per_utterance"], s1r["sgl+adaptive"]["per_utterance"])]
    y = pooled_bootstrap([p[:2] for p in pairs], [p[2] for p in pairs])
    assert [round(y[k], 2) for k in ("diff", "lo", "hi")] == [-0.18, -0.37, 0.02]  # the interval reaches 0: not adopted
    for kept, fig in (((plain["sgl+adaptive"]["per_utterance"], sl["sgl+adaptive"]["per_utterance"]), [0.06, -0.45, 0.58]),
                      ((last, s1r["sgl+adaptive"]["per_utterance"]), [-0.12, -0.65, 0.38])):  # 140, 280 steps from dense
        pairs = [matched_errors(plain["dense"]["per_utterance"], m) for m in kept]
        z = pooled_bootstrap([p[:2] for p in pairs], [p[2] for p in pairs])
        assert [round(z[k], 2) for k in ("diff", "lo", "hi")] == fig


def test_across_runs_is_students_t_over_the_per_run_differences():
    """The run-to-run interval: mean ± t(0.975, n−1)·s/√n, checked against scipy; none below three runs."""
    import statistics

    from scipy.stats import t as student

    from whisper_edge.pooled import across_runs

    assert across_runs([0.3]) is None and across_runs([0.3, 0.4]) is None
    for xs in ([0.29, 0.37, 0.71], [1.0, -1.0, 0.5, 2.0, 0.0], [0.1 * i for i in range(14)]):
        half = student.ppf(0.975, len(xs) - 1) * statistics.stdev(xs) / len(xs) ** 0.5
        lo, hi = across_runs(xs)
        assert lo == pytest.approx(statistics.fmean(xs) - half, abs=1e-3) and hi == pytest.approx(statistics.fmean(xs) + half, abs=1e-3)
    assert across_runs([0.5, 0.5, 0.5]) == pytest.approx((0.5, 0.5))  # no spread, no width


def test_compare_says_when_the_runs_recipes_differ_or_share_a_dense_model(tmp_path):
    """Pooling is for repetitions of one recipe on independent dense models: anything else is said above the runs."""
    from whisper_edge.pooled import pool_runs, pooled_table

    rng = __import__("random").Random(5)
    runs = [_run(tmp_path, f"r{i}", [rng.randrange(3) for _ in range(60)], [rng.randrange(3) for _ in range(60)],
                 [0] * 60) for i in range(3)]
    same = json.loads((runs[1] / "results.json").read_text())  # run 3: run 2's dense model (--reuse), another recovery
    third = json.loads((runs[2] / "results.json").read_text())
    third["models"]["dense"] = same["models"]["dense"]
    for i, (run, alpha) in enumerate(zip(runs, (0.5, 0.5, 0.25))):
        res = third if i == 2 else json.loads((run / "results.json").read_text())
        res["config"] = {"data": f"corpus{i}", "eval": {"extra_test": f"x{i}"}, "steps": 100,
                         "prune": {"distill_alpha": alpha, "export_rounds": i == 0, "targets": [0.25, 0.35]}}
        (run / "results.json").write_text(json.dumps(res))
    got = pool_runs(runs)
    # where the data and reports went, and what was exported, are not the recipe
    assert got["recipe_differences"] == {"prune.distill_alpha": [0.5, 0.5, 0.25]}
    assert got["shared_dense"] == [[1, 2]]
    table = pooled_table(got)
    assert "`prune.distill_alpha` 0.5 (runs 1, 2), 0.25 (run 3)" in table and "Runs 2, 3 have one dense model" in table
    alone = pool_runs(runs[:2])  # one recipe, two dense models: nothing to say
    assert alone["recipe_differences"] == {} and alone["shared_dense"] == []
    assert "settings differ" not in pooled_table(alone) and "one dense model" not in pooled_table(alone)
    # runs whose rounds took the dense model's groups: their SGL stages (one of them skipped, sgl: null) shaped no
    # pruned model, so differing SGL settings are not a recipe difference; with the SGL model's groups they are
    for run, sgl in zip(runs[:2], ({"sgl.gamma": 3.0}, None)):
        res = json.loads((run / "results.json").read_text())
        res["config"] |= {"sgl": sgl, "prune": {"schedule": "gradual", "mask_from": "dense"}}
        (run / "results.json").write_text(json.dumps(res))
    assert pool_runs(runs[:2])["recipe_differences"] == {}
    res = json.loads((runs[0] / "results.json").read_text())
    res["config"]["prune"]["mask_from"] = "sgl"
    (runs[0] / "results.json").write_text(json.dumps(res))
    assert pool_runs(runs[:2])["recipe_differences"] == {  # the section read with its defaults, as load_config does
        "prune.mask_from": ["sgl", "dense"], "sgl.sgl.gamma": [3.0, None], "sgl.sgl.lambda_dec": [1.5, None],
        "sgl.sgl.lambda_enc": [1.5, None]}
    # a run recorded before a setting existed had its default: session 34's seed-less runs trained with seed 0
    for run, seed in zip(runs[:2], (None, 3)):  # nor is the seed, the draw that repetitions differ by
        res = json.loads((run / "results.json").read_text())
        res["config"]["prune"]["mask_from"] = "dense"
        res["config"].pop("seed", None) if seed is None else res["config"].update(seed=seed)
        (run / "results.json").write_text(json.dumps(res))
    assert pool_runs(runs[:2])["recipe_differences"] == {}
    # select as it acted: a run that kept its best readings, each its recovery's last, kept what `select: last` keeps;
    # a recovery's own seed is a draw, like the experiment's
    rounds = [{"recovery": {"steps": 40, "best_step": 40}}, {"recovery": {"steps": 140, "best_step": 140}}]
    for run, select, rec_seed in zip(runs[:2], (None, "last"), (None, 1)):
        res = json.loads((run / "results.json").read_text())
        res["config"]["prune"]["recover_set"] = {"select": select, "seed": rec_seed}
        res["prune"] = {"rounds": rounds}
        (run / "results.json").write_text(json.dumps(res))
    assert pool_runs(runs[:2])["recipe_differences"] == {}
    res = json.loads((runs[0] / "results.json").read_text())
    res["prune"]["rounds"][1]["recovery"]["best_step"] = 80  # its best reading came before its last: another choice
    (runs[0] / "results.json").write_text(json.dumps(res))
    assert pool_runs(runs[:2])["recipe_differences"] == {"prune.recover_set.select": [None, "last"]}
    # an experiment still running has written its evaluations but not its config: said, not silently compared
    res = json.loads((runs[1] / "results.json").read_text())
    res.pop("config")
    (runs[1] / "results.json").write_text(json.dumps(res))
    unfinished = pool_runs(runs[:2])
    assert unfinished["unfinished"] == [1] and unfinished["recipe_differences"] == {}
    assert "Run 2: no settings recorded" in pooled_table(unfinished)


def test_compare_by_a_corpus_column_splits_each_row_by_its_value(tmp_path):
    """--by engine: one row per engine, each the pooled difference over that engine's utterances only, read from the
    corpora the runs' configs name; a column, a corpus or an utterance that is not there is a clear error."""
    import datasets

    from whisper_edge.pooled import pool_runs, pooled_table
    from whisper_edge.runtime.metrics import paired_by_id

    n = 60
    corpus = tmp_path / "corpus"
    engines = ["kokoro" if i % 3 == 0 else "espeak" for i in range(n)]
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(
        {"id": [f"u{i}" for i in range(n)], "engine": engines, "sentence": ["x"] * n})}).save_to_disk(str(corpus))
    dense = [1] * n
    pruned = [2 if e == "kokoro" else 1 for e in engines]  # the pruned model loses words on kokoro clips only
    runs = [_run(tmp_path, f"r{i}", dense, pruned, dense, long=False) for i in range(2)]
    for run in runs:
        res = json.loads((run / "results.json").read_text())
        res["config"] = {"data": str(corpus)}
        (run / "results.json").write_text(json.dumps(res))
    got = pool_runs(runs, ("test",), by="engine")
    rows = {r["group"]: r for r in got["rows"] if r["model"] == "sgl+adaptive"}
    assert set(rows) == {"espeak", "kokoro"} and rows["espeak"]["diff"] == 0
    res = json.loads((runs[0] / "results.json").read_text())["models"]
    kokoro = [[u for u in res[m]["per_utterance"] if engines[int(u[0][1:])] == "kokoro"] for m in ("dense", "sgl+adaptive")]
    assert rows["kokoro"]["diff"] == pytest.approx(paired_by_id(*kokoro)["diff"]) and rows["kokoro"]["diff"] > 0
    assert max(rows["kokoro"]["utterances"]) == n // 3
    assert "| sgl+adaptive | test | kokoro | 20 | 2 |" in pooled_table(got)
    with pytest.raises(ValueError, match="no such column; its columns to group by: engine"):
        pool_runs(runs, ("test",), by="voice")
    # the extra test set: its own corpus (eval.extra_test), its ids under extra_test/, pooled with the test split's
    extra = tmp_path / "extra"
    datasets.DatasetDict({"test": datasets.Dataset.from_dict(
        {"id": ["u0", "u1"], "engine": ["kokoro", "kokoro"], "sentence": ["y", "y"]})}).save_to_disk(str(extra))
    for run in runs:
        res = json.loads((run / "results.json").read_text())
        res["config"]["eval"] = {"extra_test": str(extra)}
        for m in res["models"].values():
            m["splits"] = {"test+extra_test": {"per_utterance": m["per_utterance"] + [["extra_test/u0", 0, 4], ["extra_test/u1", 0, 4]]}}
        (run / "results.json").write_text(json.dumps(res))
    pooled = {r["group"]: max(r["utterances"]) for r in pool_runs(runs, ("test+extra_test",), by="engine")["rows"]
              if r["model"] == "sgl+adaptive"}
    assert pooled == {"espeak": 40, "kokoro": 22}
    res = json.loads((runs[1] / "results.json").read_text())
    res["models"]["dense"]["per_utterance"].append(["u999", 0, 5])
    res["models"]["sgl+adaptive"]["per_utterance"].append(["u999", 0, 5])
    (runs[1] / "results.json").write_text(json.dumps(res))
    with pytest.raises(ValueError, match="utterance u999 of split test is not in the corpus"):
        pool_runs(runs, ("test",), by="engine")
    res["config"]["data"] = str(tmp_path / "gone")
    (runs[1] / "results.json").write_text(json.dumps(res))
    with pytest.raises(FileNotFoundError, match="gone: the corpus a run was tested on is not here"):
        pool_runs(runs, ("test",), by="engine")


def _records_on_saved_corpora(tmp_path, names):
    """docs/run-records' results of NAMES with the corpora their configs name (runs/corpus, runs/extra-test) saved as
    small corpora of id, engine and voice group (docs/run-records/corpus-columns.json), for `compare --by`."""
    import datasets

    records = Path(__file__).resolve().parent.parent / "docs" / "run-records"
    columns = json.loads((records / "corpus-columns.json").read_text())
    where = {}
    for path in ("runs/corpus", "runs/extra-test"):
        where[path] = tmp_path / path.split("/")[1]
        datasets.DatasetDict({split: datasets.Dataset.from_dict(
            {"id": list(rows), "engine": [v[0] for v in rows.values()], "voice_group": [v[1] for v in rows.values()]})
            for split, rows in columns[path].items()}).save_to_disk(str(where[path]))
    runs = []
    for name in names:
        res = json.loads((records / f"{name}-results.json").read_text())
        res["config"]["data"] = str(where[res["config"]["data"]])
        res["config"]["eval"]["extra_test"] = str(where[res["config"]["eval"]["extra_test"]])
        (tmp_path / f"{name}.json").write_text(json.dumps(res))
        runs.append(tmp_path / f"{name}.json")
    return records, columns, runs


def _xval(records, name):
    """The models of docs/run-records/NAME-extra-validation.json."""
    return json.loads((records / f"{name}-extra-validation.json").read_text())["models"]


def _on(rows, val, engine):
    """Per-utterance rows of the extra validation clips one engine spoke (every row for engine None)."""
    return [u for u in rows if engine is None or val[u[0]][0] == engine]


def _sgl_rows(paths, by=None):
    """The pooled report's sgl+adaptive rows of the runs at ``paths``, by (split, group)."""
    from whisper_edge.pooled import pool_runs

    return {(r["split"], r.get("group")): r for r in pool_runs(paths, by=by)["rows"] if r["model"] == "sgl+adaptive"}


def _fig(r, keys=("diff", "lo", "hi")):
    """A row's figures as docs/results.md prints them (two decimals)."""
    return [round(r[k], 2) for k in keys]


def test_session_40s_per_engine_figures_from_the_stored_records(tmp_path):
    """docs/results.md, session 40: `compare --by engine` / `--by voice_group` on the four α 0.25 runs, and the
    per-engine extra-validation readings — recomputed from docs/run-records, with the corpora's id → engine and voice
    group (docs/run-records/corpus-columns.json) saved as small corpora the runs' configs point at."""
    from whisper_edge.pooled import pool_runs
    from whisper_edge.runtime.metrics import paired_by_id

    records, columns, runs = _records_on_saved_corpora(tmp_path, ("paper20-a25", "paper22", "paper22-s1-last", "paper23"))

    def figures(by):
        return {(r["split"], r["group"]): [round(r[k], 2) for k in ("diff", "lo", "hi")]
                for r in pool_runs(runs, by=by)["rows"] if r["model"] == "sgl+adaptive"}

    engine = figures("engine")
    assert engine[("test+extra_test", "espeak")] == [0.12, -0.18, 0.41]
    assert engine[("test+extra_test", "kokoro")] == [0.61, -0.11, 1.33]
    assert engine[("test", "espeak")] == [0.37, -0.25, 0.96] and engine[("test", "kokoro")] == [1.84, 0.29, 3.52]
    assert engine[("test_noisy", "espeak")] == [1.53, 0.18, 2.95] and engine[("test_noisy", "kokoro")] == [5.46, 1.51, 9.67]
    group = figures("voice_group")
    assert group[("test", "unseen")] == [1.41, 0.58, 2.34] and group[("test", "seen")] == [0.16, -0.73, 1.11]
    assert group[("test+extra_test", "unseen")] == [0.18, -0.21, 0.58]
    assert group[("test+extra_test", "seen")] == [0.32, -0.09, 0.73]
    # the 600 extra validation clips by engine, each select: last draw from its dense model
    val = columns["runs/extra-val"]["validation"]
    for name, kokoro, espeak in (("paper22", [1.41, 0.15, 2.72], -0.63), ("paper22-s1-last", [1.72, 0.52, 2.91], -0.26),
                                 ("paper23", [1.64, 0.23, 3.13], 0.00)):
        m = _xval(records, name)
        by = {e: [_on(m[x]["per_utterance"], val, e) for x in ("dense", "sgl+adaptive")] for e in ("kokoro", "espeak")}
        k = paired_by_id(*by["kokoro"])
        assert [round(k[x], 2) for x in ("diff", "lo", "hi")] == kokoro
        assert round(paired_by_id(*by["espeak"])["diff"], 2) == espeak
    # the trial: recoveries with Kokoro clips drawn 3 times as often (oversample), against the same draw without it
    from whisper_edge.runtime.metrics import matched_errors

    def pruned(name, engine=None):
        return _on(_xval(records, name)["sgl+adaptive"]["per_utterance"], val, engine)

    trial = (("paper23", "paper23-k3", [0.22, -0.26, 0.67]), ("paper22-s1-last", "paper22-s1-k3", [0.00, -0.42, 0.39]))
    for base, var, fig in trial:
        h = paired_by_id(pruned(base), pruned(var))
        assert [round(h[x], 2) for x in ("diff", "lo", "hi")] == fig
    for engine, fig in ((None, [0.11, -0.18, 0.38]), ("kokoro", [-0.59, -1.28, 0.08]), ("espeak", [0.34, 0.04, 0.65])):
        pairs = [matched_errors(pruned(base, engine), pruned(var, engine)) for base, var, _ in trial]
        w = pooled_bootstrap([p[:2] for p in pairs], [p[2] for p in pairs])
        assert [round(w[x], 2) for x in ("diff", "lo", "hi")] == fig  # overall above 0: not adopted
    # session 39's 280 against 140 recovery steps (two seeds, last weights), split by engine the same way
    r280 = _xval(records, "paper22-r280")
    steps = ((pruned("paper22"), r280["sgl+adaptive, last (step 280)"]["per_utterance"]),
             (pruned("paper22-s1-last"), pruned("paper22-s1-r280")))
    for engine, fig in ((None, [-0.18, -0.37, 0.02]), ("kokoro", [-0.43, -0.95, 0.08]), ("espeak", [-0.09, -0.30, 0.11])):
        pairs = [matched_errors(*(_on(x, val, engine) for x in pair)) for pair in steps]
        w = pooled_bootstrap([p[:2] for p in pairs], [p[2] for p in pairs])
        assert [round(w[x], 2) for x in ("diff", "lo", "hi")] == fig


def test_session_41s_fifth_replication_pooled_from_the_stored_records(tmp_path):
    """docs/results.md, session 41: runs/paper24 (seed 4 from scratch, the recipe as it stands) read on test once and
    pooled with the four α 0.25 runs, as pre-registered in session 40 — overall, on separate dense models, by engine."""
    names = ("paper20-a25", "paper22", "paper22-s1-last", "paper23", "paper24")
    records, _, runs = _records_on_saved_corpora(tmp_path, names)

    one = _sgl_rows(runs[4:])
    assert _fig(one[("test+extra_test", None)]) == [0.20, -0.31, 0.67] and _fig(one[("test", None)]) == [0.33, -0.79, 1.55]
    assert _fig(one[("test_noisy", None)]) == [3.79, 1.39, 6.32]
    five = _sgl_rows(runs)
    assert [round(x, 2) for x in five[("test+extra_test", None)]["per_run"]] == [0.37, 0.40, 0.12, 0.11, 0.20]
    assert _fig(five[("test+extra_test", None)], ("diff", "lo", "hi", "runs_lo", "runs_hi")) == [0.24, -0.02, 0.48, 0.07, 0.41]
    assert _fig(five[("test", None)]) == [0.69, 0.14, 1.29] and _fig(five[("test_noisy", None)]) == [2.88, 1.38, 4.40]
    apart = _sgl_rows([runs[0], runs[1], runs[3], runs[4]])  # four separate dense models (paper22-s1-last shares paper22's)
    assert _fig(apart[("test+extra_test", None)], ("diff", "lo", "hi", "runs_lo", "runs_hi")) == [0.27, -0.00, 0.51, 0.05, 0.49]
    engine = _sgl_rows(runs, by="engine")
    assert _fig(engine[("test+extra_test", "espeak")]) == [0.11, -0.17, 0.37]
    assert _fig(engine[("test+extra_test", "kokoro")]) == [0.60, -0.05, 1.24]
    assert _fig(engine[("test_noisy", "kokoro")]) == [5.89, 2.05, 10.07]
    assert _fig(engine[("test_noisy", "espeak")]) == [1.68, 0.42, 3.01]
    # the 600 extra validation clips: runs/paper24's 140-step model (the recipe), by engine too
    from whisper_edge.runtime.metrics import paired_by_id

    val = json.loads((records / "corpus-columns.json").read_text())["runs/extra-val"]["validation"]
    xv = _xval(records, "paper24")
    for eng, want in ((None, [0.41, -0.12, 0.98]), ("kokoro", [1.41, 0.15, 2.69]), ("espeak", [0.08, -0.47, 0.68])):
        assert _fig(paired_by_id(*(_on(xv[x]["per_utterance"], val, eng) for x in ("dense", "sgl+adaptive")))) == want
    # the third 280-step pair (runs/paper24-r280: round 2 recovered 280 steps, last weights) and the three pooled
    from whisper_edge.runtime.metrics import matched_errors

    r24 = _xval(records, "paper24-r280")
    assert r24["dense"]["per_utterance"] == xv["dense"]["per_utterance"]  # one dense model, read once
    assert _fig(paired_by_id(xv["sgl+adaptive"]["per_utterance"], r24["sgl+adaptive"]["per_utterance"])) == [-0.41, -0.79, -0.04]
    steps = ((_xval(records, "paper22")["sgl+adaptive"], _xval(records, "paper22-r280")["sgl+adaptive, last (step 280)"]),
             (_xval(records, "paper22-s1-last")["sgl+adaptive"], _xval(records, "paper22-s1-r280")["sgl+adaptive"]),
             (xv["sgl+adaptive"], r24["sgl+adaptive"]))
    for eng, want in ((None, [-0.26, -0.43, -0.07]), ("kokoro", [-0.39, -0.93, 0.11]), ("espeak", [-0.21, -0.38, -0.03])):
        pairs = [matched_errors(*(_on(x["per_utterance"], val, eng) for x in pair)) for pair in steps]
        w = pooled_bootstrap([p[:2] for p in pairs], [p[2] for p in pairs])
        assert _fig(w) == want  # overall below 0: the recipes take 280 steps


def test_session_42s_sixth_replication_the_first_at_280_steps_from_the_stored_records(tmp_path):
    """docs/results.md, session 42: runs/paper25 (seed 5 from scratch, 280 recovery steps at 35 %) read on test once,
    and the six α 0.25 runs pooled as written before the run — overall, on separate dense models, by engine."""
    import yaml

    names = ("paper20-a25", "paper22", "paper22-s1-last", "paper23", "paper24", "paper25")
    records, _, runs = _records_on_saved_corpora(tmp_path, names)
    cfg = yaml.safe_load((records / "paper25-experiment.yaml").read_text())
    assert cfg["seed"] == 5 and cfg["prune"]["round_steps"] == [40, 280]  # the recipe as it stands, not the 140-step one

    one = _sgl_rows(runs[5:])
    assert _fig(one[("test+extra_test", None)]) == [0.19, -0.36, 0.77] and _fig(one[("test", None)]) == [0.13, -1.11, 1.48]
    assert _fig(one[("test_noisy", None)]) == [0.65, -1.76, 3.02] and _fig(one[("test_long", None)]) == [-1.11, -2.39, 0.20]
    six = _sgl_rows(runs)
    assert [round(x, 2) for x in six[("test+extra_test", None)]["per_run"]] == [0.37, 0.40, 0.12, 0.11, 0.20, 0.19]
    assert _fig(six[("test+extra_test", None)], ("diff", "lo", "hi", "runs_lo", "runs_hi")) == [0.23, -0.02, 0.47, 0.10, 0.36]
    assert _fig(six[("test", None)]) == [0.60, 0.04, 1.20] and _fig(six[("test_noisy", None)]) == [2.51, 1.15, 3.90]
    apart = _sgl_rows([r for r, name in zip(runs, names) if name != "paper22-s1-last"])  # five separate dense models
    assert _fig(apart[("test+extra_test", None)], ("diff", "lo", "hi", "runs_lo", "runs_hi")) == [0.25, -0.01, 0.49, 0.10, 0.41]
    engine, alone = _sgl_rows(runs, by="engine"), _sgl_rows(runs[5:], by="engine")
    assert _fig(engine[("test+extra_test", "espeak")]) == [0.12, -0.14, 0.38]
    assert _fig(engine[("test+extra_test", "kokoro")]) == [0.52, -0.09, 1.13]
    assert _fig(engine[("test_noisy", "espeak")]) == [1.39, 0.21, 2.63] and _fig(engine[("test_noisy", "kokoro")]) == [5.33, 1.89, 8.97]
    assert _fig(alone[("test+extra_test", "kokoro")]) == [0.11, -1.20, 1.40] and _fig(alone[("test_noisy", "kokoro")]) == [2.53, -2.06, 7.07]
    # the fourth 280-against-140 pair (runs/paper25 and its 140-step twin runs/paper25-r140), on the 600 extra
    # validation clips, and the four pairs pooled: still below 0, so the recipes keep 280 steps
    from whisper_edge.runtime.metrics import matched_errors, paired_by_id

    val = json.loads((records / "corpus-columns.json").read_text())["runs/extra-val"]["validation"]
    p25, r140 = _xval(records, "paper25"), _xval(records, "paper25-r140")
    assert p25["dense"]["per_utterance"] == r140["dense"]["per_utterance"]  # one dense model
    assert _fig(paired_by_id(r140["sgl+adaptive"]["per_utterance"], p25["sgl+adaptive"]["per_utterance"])) == [0.02, -0.33, 0.34]
    steps = ((_xval(records, "paper22")["sgl+adaptive"], _xval(records, "paper22-r280")["sgl+adaptive, last (step 280)"]),
             (_xval(records, "paper22-s1-last")["sgl+adaptive"], _xval(records, "paper22-s1-r280")["sgl+adaptive"]),
             (_xval(records, "paper24")["sgl+adaptive"], _xval(records, "paper24-r280")["sgl+adaptive"]),
             (r140["sgl+adaptive"], p25["sgl+adaptive"]))
    for eng, want in ((None, [-0.19, -0.34, -0.02]), ("kokoro", [-0.37, -0.83, 0.06]), ("espeak", [-0.12, -0.29, 0.04])):
        pairs = [matched_errors(*(_on(x["per_utterance"], val, eng) for x in pair)) for pair in steps]
        assert _fig(pooled_bootstrap([p[:2] for p in pairs], [p[2] for p in pairs])) == want


def test_session_43s_whole_recipe_run_from_the_stored_records(tmp_path):
    """docs/results.md, session 43: recipes/paper.yaml in one run (runs/paper26, on runs/paper25's dense model by
    --reuse): its selection took round 3 (45 %), read once on test against the dense model and against IMP."""
    from whisper_edge.pooled import pool_runs

    records, _, runs = _records_on_saved_corpora(tmp_path, ("paper26",))
    res = json.loads((records / "paper26-results.json").read_text())
    assert res["config"]["prune"]["targets"] == [0.25, 0.35, 0.45, 0.55] and res["config"]["imp"] is not None
    assert res["config"]["prune"]["ablate"] and res["config"]["seed"] == 5  # the whole recipe, not the replication subset
    one = _sgl_rows(runs)
    assert _fig(one[("test+extra_test", None)]) == [1.21, 0.56, 1.87] and _fig(one[("test", None)]) == [1.83, 0.53, 3.24]
    assert _fig(one[("test_noisy", None)]) == [10.20, 4.13, 19.11]
    assert round(one[("test", None)]["removed"][0], 1) == 45.0  # the selected round: 45 % of attention + FFN
    vs_imp = {r["split"]: r for r in pool_runs(runs, against="imp")["rows"] if r["model"] == "sgl+adaptive"}
    assert _fig(vs_imp["test+extra_test"]) == [-3.61, -4.45, -2.78]
    # the same dense model as runs/paper25: its per-utterance test errors are that run's
    p25 = json.loads((records / "paper25-results.json").read_text())["models"]["dense"]["per_utterance"]
    assert sorted(res["models"]["dense"]["per_utterance"]) == sorted(p25)


def test_session_44s_imp_rerun_and_the_confirmation_readings_from_the_stored_records(tmp_path):
    """docs/results.md, session 44: IMP re-run with its learning rate restarted each round (runs/paper27, runs/paper26's
    pruned model by --reuse), read at 45 % against the dense model and the structured model; and runs/paper26's four
    rounds on the 600 extra validation clips, where prune.confirm_on would still select round 3."""
    from whisper_edge.evaluation import chosen_lines
    from whisper_edge.pooled import pool_runs
    from whisper_edge.runtime.metrics import paired_by_id
    from whisper_edge.training.selection import confirm_rounds

    records, _, runs = _records_on_saved_corpora(tmp_path, ("paper27",))
    res = json.loads((records / "paper27-results.json").read_text())
    old = json.loads((records / "paper26-results.json").read_text())
    assert res["models"]["sgl+adaptive"]["per_utterance"] == old["models"]["sgl+adaptive"]["per_utterance"]  # reused
    assert [round(p["val_wer"], 2) for p in res["imp_points"]] == [7.72, 7.72, 8.83, 24.87]
    assert [round(p["val_wer"], 2) for p in old["imp_points"]] == [7.63, 7.29, 11.41, 107.38]
    imp = {r["split"]: r for r in pool_runs(runs)["rows"] if r["model"] == "imp"}
    assert _fig(imp["test+extra_test"]) == [3.67, 2.67, 4.88]
    vs_imp = {r["split"]: r for r in pool_runs(runs, against="imp")["rows"] if r["model"] == "sgl+adaptive"}
    assert _fig(vs_imp["test+extra_test"]) == [-2.46, -3.69, -1.39]
    xv = json.loads((records / "paper26-rounds-extra-validation.json").read_text())["models"]
    diffs = [paired_by_id(xv["dense"]["per_utterance"], xv[f"round {r}"]["per_utterance"]) for r in (1, 2, 3, 4)]
    assert [_fig(d) for d in diffs] == [[0.22, -0.26, 0.67], [-0.12, -0.64, 0.41], [0.14, -0.44, 0.68], [2.36, 1.60, 3.14]]
    rounds = old["prune"]["rounds"]  # within +0.5 on the 144 clips: rounds 1–3; confirmed largest first
    within = [r | {"model": f"round {r['round']}"} for r in rounds if r["val_wer"] <= old["prune"]["wer_budget"]["base_wer"] + 0.5]

    def read(model, data, path, language):
        m = xv[str(model)]
        return {"wer": m["wer"], "utterances": len(m["per_utterance"]), "per_utterance": m["per_utterance"]}

    chosen, rec = confirm_rounds(within, dense_dir="dense", data="runs/extra-val", budget=0.5, out=tmp_path, read=read)
    assert [r["round"] for r in within] == [1, 2, 3] and chosen["round"] == 3 and rec["budget_met"]
    assert [r["round"] for r in rec["readings"]] == [3]  # the largest passed at once: the same choice as without
    assert "Chosen: round 3 (within the budget on the confirmation clips)" in "\n".join(chosen_lines(rec | {"confirmation": rec}))
