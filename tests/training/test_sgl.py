"""Sparse Group LASSO: value and gradient against a direct computation; the proximal step makes exact zeros."""

import copy
import math

import pytest
import torch

from whisper_edge.training.architecture import load_checkpoint
from whisper_edge.training.groups import group_scores
from whisper_edge.training.sgl import SGLConfig, sgl_penalty, sgl_prox_


def _direct(model, cfg):
    total = 0.0
    for layers, lam in ((model.model.encoder.layers, cfg.lambda_enc), (model.model.decoder.layers, cfg.lambda_dec)):
        for layer in layers:
            atts = [layer.self_attn] + ([layer.encoder_attn] if hasattr(layer, "encoder_attn") else [])
            groups = []
            for a in atts:
                for h in range(a.num_heads):
                    r = slice(h * 64, (h + 1) * 64)
                    groups.append([a.q_proj.weight[r], a.k_proj.weight[r], a.v_proj.weight[r], a.out_proj.weight[:, r],
                                   a.q_proj.bias[r], a.v_proj.bias[r]])
            for j in range(layer.fc1.out_features):
                groups.append([layer.fc1.weight[j], layer.fc1.bias[j:j + 1], layer.fc2.weight[:, j]])
            for g in groups:
                flat = torch.cat([t.reshape(-1) for t in g])
                total = total + lam * (cfg.alpha * flat.abs().sum() + (1 - cfg.alpha) * math.sqrt(flat.numel()) * flat.norm())
    return total


def test_penalty_value_and_gradient_match_direct_computation(tiny_model):
    model, _ = load_checkpoint(tiny_model)
    cfg = SGLConfig(lambda_enc=1e-3, lambda_dec=3e-3, alpha=0.3)
    fast = sgl_penalty(model, cfg)
    fast.backward()
    g_fast = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    slow = _direct(model, cfg)
    slow.backward()
    assert fast.item() == pytest.approx(slow.item(), rel=1e-5)
    for n, p in model.named_parameters():
        if p.grad is not None:
            assert torch.allclose(g_fast[n], p.grad, atol=1e-7, rtol=1e-4), n
    assert len(g_fast) > 10


def test_proximal_step_zeroes_weak_groups_exactly(tiny_model):
    model, _ = load_checkpoint(tiny_model)
    with torch.no_grad():  # make one head and one channel weak; the step must zero exactly those
        a = model.model.encoder.layers[1].self_attn
        for lin in (a.q_proj, a.k_proj, a.v_proj):
            lin.weight[64:] *= 1e-3
        a.q_proj.bias[64:] *= 1e-3
        a.v_proj.bias[64:] *= 1e-3
        a.out_proj.weight[:, 64:] *= 1e-3
        f = model.model.decoder.layers[1]
        f.fc1.weight[5] *= 1e-3
        f.fc1.bias[5] *= 1e-3
        f.fc2.weight[:, 5] *= 1e-3
    before = {(s["side"], s["layer"], s["kind"]): s["norm"] for s in group_scores(model)}
    sgl_prox_(model, SGLConfig(lambda_enc=1e-4, lambda_dec=1e-3, alpha=0.5), lr=1.0)
    after = {(s["side"], s["layer"], s["kind"]): s["norm"] for s in group_scores(model)}
    assert after[("encoder", 1, "heads")][1] == 0 and after[("encoder", 1, "heads")][0] > 0
    assert after[("decoder", 1, "ffn")][5] == 0
    assert int((after[("decoder", 1, "ffn")] == 0).sum()) == 1
    assert all((after[k] <= before[k] + 1e-6).all() for k in before)  # a proximal step only shrinks


def test_loss_mode_penalty_is_zero_when_lambdas_are(tiny_model):
    model, _ = load_checkpoint(tiny_model)
    assert sgl_penalty(model, SGLConfig(lambda_enc=0, lambda_dec=0)).item() == 0.0
    with pytest.raises(ValueError, match="sgl.alpha"):
        SGLConfig(alpha=1.5)


def test_importance_matches_direct_contribution_norms(tiny_model, speech_corpus):
    """Per head and per channel: the mean norm of what the group adds to the residual, computed by hand."""
    from whisper_edge.training.importance import adaptive_weights, group_importance
    from whisper_edge.training.groups import iter_groups

    model, processor = load_checkpoint(tiny_model)
    feats = torch.randn(2, 80, 2 * model.config.max_source_positions)
    labels = torch.tensor([[50259, 50276, 50359, 400, 500], [50259, 50276, 50359, 600, 700]])
    imp = group_importance(model, [{"input_features": feats, "labels": labels}])
    assert len(imp) == len(list(iter_groups(model)))
    seen = {}
    layer = model.model.encoder.layers[1]
    layer.fc2.register_forward_pre_hook(lambda m, a: seen.__setitem__("ffn", a[0].detach()))
    layer.self_attn.out_proj.register_forward_pre_hook(lambda m, a: seen.__setitem__("att", a[0].detach()))
    with torch.no_grad():
        model.eval()(input_features=feats, labels=labels)
    a = seen["ffn"].reshape(-1, seen["ffn"].shape[-1])
    direct_ffn = torch.stack([(a[:, j:j + 1] * layer.fc2.weight[:, j]).norm(dim=1).mean() for j in range(a.shape[1])])
    c = seen["att"].reshape(-1, seen["att"].shape[-1])
    w = layer.self_attn.out_proj.weight
    direct_heads = torch.stack([(c[:, h * 64:(h + 1) * 64] @ w[:, h * 64:(h + 1) * 64].T).norm(dim=1).mean() for h in range(2)])
    # family order: encoder 0 heads, encoder 0 ffn, encoder 1 heads, encoder 1 ffn, …
    assert torch.allclose(imp[3], direct_ffn, rtol=1e-4)
    assert torch.allclose(imp[2], direct_heads, rtol=1e-4)
    ws = adaptive_weights(imp, gamma=2.0, w_max=20.0)
    fam = ws[3]
    assert float(fam.max()) <= 20.0 and float(fam.min()) > 0
    weakest, strongest = int(imp[3].argmin()), int(imp[3].argmax())
    assert fam[weakest] > 1.0 > fam[strongest]
    assert all(torch.equal(x, torch.ones_like(x)) for x in adaptive_weights(imp, gamma=0.0, w_max=20.0))


def test_weighted_proximal_step_zeroes_the_heavily_weighted_groups_first(tiny_model):
    from whisper_edge.training.groups import iter_groups

    model, _ = load_checkpoint(tiny_model)
    fams = list(iter_groups(model))
    weights = [torch.full((g,), 0.01) for *_, (_, g) in fams]
    weights[1][7] = 100.0  # encoder layer 0, FFN channel 7
    plain = copy.deepcopy(model)
    cfg = SGLConfig(lambda_enc=1.0, lambda_dec=1.0, alpha=0.2)
    norm = float(group_scores(model)[1]["norm"][7])
    lr = 1.5 * norm / (100.0 * 0.8 * math.sqrt(2 * 128 + 1))  # enough to zero channel 7 at weight 100
    sgl_prox_(model, cfg, lr=lr, weights=weights)
    after = group_scores(model)[1]["norm"]
    assert after[7] == 0 and int((after == 0).sum()) == 1
    sgl_prox_(plain, cfg, lr=lr)  # unweighted, the same step zeroes nothing there
    assert float(group_scores(plain)[1]["norm"][7]) > 0
    # the penalty is weighted the same way
    w1 = [torch.ones(g) for *_, (_, g) in fams]
    assert sgl_penalty(model, cfg, w1).item() == pytest.approx(sgl_penalty(model, cfg).item(), rel=1e-6)
