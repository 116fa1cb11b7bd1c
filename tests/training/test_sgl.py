"""Sparse Group LASSO: value and gradient against a direct computation; the proximal step makes exact zeros."""

import math

import pytest
import torch

from whisper_edge.training.architecture import load_checkpoint
from whisper_edge.training.sgl import SGLConfig, group_scores, sgl_penalty, sgl_prox_


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
