"""The compensated (``obs``) score: what removing a group costs once the others are re-fitted, checked against direct
least-squares solves, and usable by the adaptive rule end to end on the tiny model."""

from __future__ import annotations

import pytest
import torch

from whisper_edge.training.compensation import greedy_saliency, solve_compensation

RIDGE = 0.01


def _problem(n_in=12, group_size=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(500, n_in, generator=g, dtype=torch.float64) * torch.linspace(0.5, 2, n_in, dtype=torch.float64)
    Z = torch.cat([X, torch.ones(500, 1, dtype=torch.float64)], 1)
    W, b = torch.randn(6, n_in, generator=g), torch.randn(6, generator=g)
    return X, Z.T @ Z, W, b


def _objective(gram, W, b, kept_cols):
    """The compensation's objective after keeping ``kept_cols``: Σ‖ŷ − y‖² + λ‖W'_K − W_K‖², by a direct solve."""
    n_in = W.shape[1]
    kept = torch.tensor(sorted(kept_cols), dtype=torch.long)
    W_k, b_k = solve_compensation(gram, W, b, kept, RIDGE)
    full = torch.cat([W.double().T, b.double()[None]], 0)
    theta = torch.zeros_like(full)
    theta[kept], theta[n_in] = W_k.T, b_k
    d = theta - full
    lam = RIDGE * float(gram.diagonal()[:n_in].mean())
    return float(torch.einsum("io,ij,jo->", d, gram, d)) + lam * float(d[kept].pow(2).sum())


def test_greedy_costs_equal_direct_solves_of_the_removed_prefix():
    X, gram, W, b = _problem()
    score = greedy_saliency(gram, W, b, 1, RIDGE, chunk=1)
    tokens = float(gram[-1, -1])
    order = torch.argsort(score).tolist()
    # the cheapest single removal is the group with the lowest score, and its cost is the score's square × tokens
    singles = [_objective(gram, W, b, set(range(12)) - {j}) for j in range(12)]
    assert order[0] == min(range(12), key=singles.__getitem__)
    assert float(score[order[0]]) ** 2 * tokens == pytest.approx(min(singles), rel=1e-6)
    # removing the first k of the order costs the sum of their increments (here the order's costs rise)
    increments = (score.double() ** 2 * tokens)[order]
    assert bool((increments[1:] >= increments[:-1]).all())
    for k in (2, 5, 9):
        assert _objective(gram, W, b, set(range(12)) - set(order[:k])) == pytest.approx(float(increments[:k].sum()), rel=1e-5)


def test_a_redundant_channel_scores_low_though_it_is_active():
    """A channel that another one carries is cheap to remove once the other is re-fitted; the activation score, which
    looks at each channel alone, ranks it among the strongest."""
    X, _, W, b = _problem()
    X[:, 4] = 3.0 * X[:, 9]  # channel 4 is a loud copy of channel 9
    Z = torch.cat([X, torch.ones(len(X), 1, dtype=torch.float64)], 1)
    gram = Z.T @ Z
    W[:, 4] *= 3
    score = greedy_saliency(gram, W, b, 1, RIDGE, chunk=1)
    activation = X.abs().mean(0) * W.double().norm(dim=0)
    assert int(torch.argmin(score)) in (4, 9)
    assert int(torch.argsort(activation, descending=True)[0]) in (4, 9)


def test_head_groups_cost_their_columns_together():
    X, gram, W, b = _problem(n_in=16)
    score = greedy_saliency(gram, W, b, 4, RIDGE)  # 4 heads of 4 columns
    assert score.shape == (4,)
    first = int(torch.argmin(score))
    singles = [_objective(gram, W, b, set(range(16)) - set(range(4 * h, 4 * h + 4))) for h in range(4)]
    assert first == min(range(4), key=singles.__getitem__)
    assert float(score[first]) ** 2 * float(gram[-1, -1]) == pytest.approx(min(singles), rel=1e-6)
    # chunked removal (several groups per step) keeps the scores non-decreasing along the order it took
    s2 = greedy_saliency(*_problem(n_in=40)[1:], 1, RIDGE, chunk=8)
    assert s2.shape == (40,) and bool((s2 >= 0).all())


def test_obs_score_prunes_the_tiny_model(tiny_model, speech_corpus):
    from whisper_edge.training.architecture import load_checkpoint
    from whisper_edge.training.pruning import AdaptiveOptions, calibrate, prune_adaptive

    model, processor = load_checkpoint(tiny_model)
    opts = AdaptiveOptions(score="obs", calib_batches=1, k1=0.8)
    scores, grams = calibrate(model, processor, speech_corpus, opts)
    assert grams is not None and len(scores) == len(grams)
    assert all(bool((s >= 0).all()) and s.dim() == 1 for s in scores)
    arch, report = prune_adaptive(model, opts, scores, grams)
    assert sum(r["groups"] - r["kept"] for r in report) > 0
    assert any("error_compensated" in r for r in report)
    with pytest.raises(ValueError, match="obs score needs calibration data"):
        prune_adaptive(load_checkpoint(tiny_model)[0], opts, None, None)
    with pytest.raises(ValueError, match="score must be one of"):
        AdaptiveOptions(score="fisher")
    from whisper_edge import cli
    from whisper_edge.training.pruning import SCORES

    assert cli.SCORES == SCORES  # the command line offers what the options accept


def test_dead_inputs_cost_nothing_and_do_not_break_the_solve():
    """An input that is zero on every calibration token (a dead channel; a whole FFN whose groups SGL zeroed) leaves
    the Gram matrix singular; such groups score (about) zero, and a family with no live input at all still scores."""
    X, _, W, b = _problem()
    X[:, [2, 5]] = 0.0
    Z = torch.cat([X, torch.ones(len(X), 1, dtype=torch.float64)], 1)
    score = greedy_saliency(Z.T @ Z, W, b, 1, 0.0, chunk=1)
    assert bool(torch.isfinite(score).all()) and set(torch.argsort(score)[:2].tolist()) == {2, 5}
    assert float(score[[2, 5]].max()) < 1e-3 * float(score.max())
    Z0 = torch.cat([torch.zeros_like(X), torch.ones(len(X), 1, dtype=torch.float64)], 1)
    assert bool(torch.isfinite(greedy_saliency(Z0.T @ Z0, W, b, 1, 0.01)).all())
