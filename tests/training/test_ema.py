"""The recipe's ``ema``: a moving average of the weights, validated and written, resumed with the training state."""

import pytest
import torch

from whisper_edge.training.architecture import load_checkpoint
from whisper_edge.training.ema import WeightAverage
from whisper_edge.training.recipes import RecipeError, load_recipe
from whisper_edge.training.train import train

FAST = {"batch_size": 4, "eval_every": 0, "save_every": 1, "warmup_steps": 1, "max_label_tokens": 40,
        "learning_rate": 1e-3, "mixed_precision": "no"}


def test_the_average_follows_its_recurrence_and_is_only_applied_inside_the_block():
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    frozen = torch.nn.Linear(2, 2).requires_grad_(False)
    model = torch.nn.Sequential(net, frozen)
    avg = WeightAverage(model, 0.9)
    assert set(avg.shadow) == {"0.weight", "0.bias"}  # trainable parameters only
    expect, rates = net.weight.detach().clone(), []
    for _ in range(100):
        with torch.no_grad():
            net.weight.add_(torch.randn_like(net.weight))
        rates.append(avg.rate())
        avg.update(model)
        expect = rates[-1] * expect + (1 - rates[-1]) * net.weight.detach()
    assert rates[0] == pytest.approx(0.1) and rates[-1] == 0.9 and rates == sorted(rates)  # warmed up, then the decay
    assert torch.allclose(avg.shadow["0.weight"], expect, atol=1e-6)
    trained = net.weight.detach().clone()
    with avg.applied(model, constrain=lambda m: m[0].weight.data[0].zero_()) as m:
        assert torch.allclose(m[0].weight[1], expect[1]) and not m[0].weight[0].any()  # the average, constrained
    assert torch.equal(net.weight, trained)  # the trained weights again
    other = WeightAverage(torch.nn.Linear(4, 2), 0.9)
    with pytest.raises(ValueError, match="another model"):
        other.load_state_dict(avg.state_dict())
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(model, 1.0)


def test_a_run_with_ema_writes_the_average_and_resumes_it(tiny_model, speech_corpus, tmp_path):
    recipe = load_recipe("dense", FAST | {"max_steps": 3, "ema": 0.5})
    run = tmp_path / "run"
    assert train(tiny_model, speech_corpus, recipe, run, stop_after=1) == {"stopped_at": 1}
    train(tiny_model, speech_corpus, recipe, run)
    straight, plain = tmp_path / "straight", tmp_path / "plain"
    train(tiny_model, speech_corpus, recipe, straight)
    train(tiny_model, speech_corpus, load_recipe("dense", FAST | {"max_steps": 3}), plain)
    a, b, c = (load_checkpoint(r / "last")[0] for r in (run, straight, plain))
    for (n, p), q in zip(a.named_parameters(), b.parameters()):  # interrupted or not: the same average
        assert torch.allclose(p, q, atol=1e-6), n
    # the same steps without the average end elsewhere: last/ holds the average, not the trained weights
    assert any(not torch.allclose(p, q, atol=1e-6) for p, q in zip(a.parameters(), c.parameters()))
    with pytest.raises(RecipeError, match="ema"):
        load_recipe("sgl", {"ema": 0.9})
    with pytest.raises(RecipeError, match="ema"):
        load_recipe("dense", {"ema": 1.0})
