"""Activation-aware importance of every removable group, and the adaptive SGL weights built on it.

A group's importance is the mean norm of what it adds to the residual stream, measured on a few
training batches:

* FFN channel j: E|a_j| · ‖fc2[:, j]‖₂, where a = gelu(fc1 x) is fc2's input (exact: a channel's
  output is the rank-one a_j · fc2[:, j]);
* attention head h: E‖out_proj[:, h] · c_h‖₂, where c_h is the head's 64-wide slice of out_proj's input.

Why not the weights alone: on Whisper-base a group with a small weight norm can still carry a large
activation (docs/pruning.md: removing the 4 % lowest-norm groups collapsed the model). The weights of
the *adaptive* SGL (after Zou's adaptive lasso) are ``w_g = min(w_max, (median_family(I) / I_g)^γ)``:
a group far below the typical group of its own sublayer is shrunk many times harder than one at the
median, so training drives the unimportant groups to exact zero and leaves the rest nearly untouched.
"""

from __future__ import annotations

import logging

import torch

from .groups import iter_families

__all__ = ["group_importance", "measure_importance", "data_calibration_batches", "adaptive_weights", "calibration_batches", "importance_stats",
           "format_importance"]

log = logging.getLogger("whisper_edge")


def _hook_points(model):
    """(side, layer, kind, Linear whose input carries the groups, heads or 0), in ``iter_groups`` order."""
    for side, i, kind, mod in iter_families(model):
        yield (side, i, kind, mod.fc2, 0) if kind == "ffn" else (side, i, kind, mod.out_proj, mod.num_heads)


@torch.no_grad()
def run_with_input_hooks(model, hooks: list, batches) -> None:
    """Run ``batches`` through the model in eval mode, fp32, with ``hooks[k]`` seeing the input of the k-th
    family's output projection (``_hook_points`` order); the hooks and the training mode are restored after."""
    points = list(_hook_points(model))
    handles = [lin.register_forward_pre_hook(hook) for (_, _, _, lin, _), hook in zip(points, hooks)]
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        with torch.autocast(device.type, enabled=False):
            for batch in batches:
                model(**{k: v.to(device) for k, v in batch.items()})
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)


@torch.no_grad()
def group_importance(model, batches) -> list[torch.Tensor]:
    """Mean contribution norm of every group, one tensor per family in ``iter_groups`` order.

    ``batches``: an iterable of model inputs (``input_features`` and ``labels``, as the training
    collator makes them)."""
    points = list(_hook_points(model))
    sums = [None] * len(points)
    counts = [0] * len(points)

    def make_hook(k, lin, heads):
        def hook(_, args):
            x = args[0].detach().float().reshape(-1, args[0].shape[-1])  # (tokens, in_features)
            if heads:
                w = lin.weight.float().view(lin.out_features, heads, -1)  # (d, H, 64)
                xh = x.view(x.shape[0], heads, -1)  # (tokens, H, 64)
                contrib = torch.einsum("thc,dhc->thd", xh, w).norm(dim=-1).sum(0)  # (H,)
            else:
                contrib = x.abs().sum(0) * lin.weight.float().norm(dim=0)  # (F,)
            sums[k] = contrib if sums[k] is None else sums[k] + contrib
            counts[k] += x.shape[0]
        return hook

    run_with_input_hooks(model, [make_hook(k, lin, h) for k, (_, _, _, lin, h) in enumerate(points)], batches)
    if any(c == 0 for c in counts):
        raise ValueError("no batch reached every sublayer; give at least one calibration batch")
    return [(s / c).cpu() for s, c in zip(sums, counts)]


def data_calibration_batches(model, processor, data, n_batches: int, language: str = "hi", seed: int = 0,
                             augment=None, concat: float = 0.0) -> list[dict]:
    """``n_batches`` batches of 8 from the train split of ``data``, sized to the model's window (``augment``: an
    AugmentConfig whose effects each clip hears, one seeded draw per clip, as in training; ``concat``: the share of
    windows that hold 2–3 clips joined, as test_long's)."""
    if data is None:
        raise ValueError("the activation score and the compensation need calibration data: give --data "
                         "(or --score rms --no-compensate)")
    from .data import load_speech_dataset

    return calibration_batches(processor, load_speech_dataset(data, "train"), n_batches=n_batches, batch_size=8,
                               audio_ctx=model.config.max_source_positions, language=language, seed=seed, augment=augment,
                               concat=concat)


def measure_importance(model, processor, data, n_batches: int, language: str = "hi", seed: int = 0) -> list[torch.Tensor]:
    """:func:`group_importance` on ``n_batches`` batches of 8 from the train split of ``data``."""
    return group_importance(model, data_calibration_batches(model, processor, data, n_batches, language, seed))


def adaptive_weights(importance: list[torch.Tensor], gamma: float, w_max: float,
                     protect_quantile: float = 1.0) -> list[torch.Tensor]:
    """w_g = min(w_max, (median of the family / I_g)^γ); γ = 0 gives plain SGL (all ones).

    ``protect_quantile`` < 1: groups at or above that quantile of their family's importance get w_g = 0,
    so the penalty never shrinks the groups that will obviously stay (gentle SGL, docs/pruning.md)."""
    out = []
    for imp in importance:
        med = imp.median().clamp_min(1e-12)
        w = (med / imp.clamp_min(1e-12)).pow(gamma).clamp(max=w_max)
        if protect_quantile < 1.0:
            w = torch.where(imp >= torch.quantile(imp.float(), protect_quantile), torch.zeros_like(w), w)
        out.append(w)
    return out


def calibration_batches(processor, dataset, *, n_batches: int, batch_size: int, audio_ctx: int, language: str = "hi",
                        max_label_tokens: int = 200, seed: int = 0, augment=None, concat: float = 0.0) -> list[dict]:
    """``n_batches`` training batches (random rows that decode and fit the window), collated as in training;
    with an active ``augment`` (training/augment.py) each clip hears one seeded draw of its effects. ``concat``: that
    share of the windows holds 2–3 clips joined with 0.3–0.9-s pauses (transcripts joined), up to the window — a
    window full of speech, as long recordings give, instead of one sentence and silence."""
    import random

    from ..runtime.audio import SAMPLE_RATE, AudioError
    from ..runtime.features import window_seconds
    from .batches import SpeechCollator
    from .data import row_audio

    collate = SpeechCollator(processor, audio_ctx, language, max_label_tokens)
    order = list(range(len(dataset)))
    random.Random(seed).shuffle(order)
    items, window = [], window_seconds(audio_ctx)
    for i in order:
        row = dataset[i]
        a = row["audio"]
        try:
            wav = row_audio(a)
        except (AudioError, OSError):
            continue
        if len(wav) / SAMPLE_RATE <= window:
            items.append((wav, row["sentence"]))
        if len(items) >= n_batches * batch_size * (3 if concat > 0 else 1):  # joined windows take up to 3 clips
            break
    if not items:
        raise ValueError("no usable calibration clip (every clip unreadable or longer than the model's window)")
    if augment is not None and augment.active:
        import numpy as np

        from .augment import augment_clip

        max_samples = int(window * SAMPLE_RATE)
        items = [(augment_clip(wav, augment, np.random.default_rng([seed, 9, k]), None, max_samples)[0], text)
                 for k, (wav, text) in enumerate(items)]
    if concat > 0:
        items = _join(items, concat, int(window * SAMPLE_RATE), random.Random(seed + 13))[:n_batches * batch_size]
    return [collate(items[k:k + batch_size]) for k in range(0, len(items), batch_size)]


def _join(items: list, share: float, max_samples: int, rng) -> list:
    """(audio, text) windows from ``items`` in order: each, with probability ``share``, the next 1–2 clips appended
    after a 0.3–0.9-s pause while the window has room."""
    import numpy as np

    from ..runtime.audio import SAMPLE_RATE

    out, i = [], 0
    while i < len(items):
        (wav, text), i = items[i], i + 1
        if rng.random() < share:
            for _ in range(rng.randint(1, 2)):
                if i >= len(items):
                    break
                pause = np.zeros(int(rng.uniform(0.3, 0.9) * SAMPLE_RATE), np.float32)
                if len(wav) + len(pause) + len(items[i][0]) > max_samples:
                    break
                wav, text, i = np.concatenate([wav, pause, items[i][0]]), f"{text} {items[i][1]}", i + 1
        out.append((wav, text))
    return out


def importance_stats(model, importance: list[torch.Tensor]) -> list[dict]:
    """Per family: median importance, quantiles of importance / median, and the correlation of the
    importance with the weight RMS (how far a weights-only score can be trusted)."""
    from .groups import group_scores

    qs = torch.tensor([0.05, 0.25, 0.75, 0.95])
    out = []
    for f, imp in zip(group_scores(model), importance):
        imp = imp.float()
        med = float(imp.median())
        ratio = imp / med if med > 0 else imp
        corr = float(torch.corrcoef(torch.stack([imp, f["rms"].float()]))[0, 1]) if len(imp) > 2 and imp.std() > 0 else float("nan")
        out.append({"side": f["side"], "layer": f["layer"], "kind": f["kind"], "groups": len(imp), "median": med,
                    "ratio_quantiles": dict(zip(("q05", "q25", "q75", "q95"), [float(x) for x in torch.quantile(ratio, qs)])),
                    "below_half_median": int((ratio < 0.5).sum()), "corr_with_rms": corr})
    return out


def format_importance(stats: list[dict]) -> str:
    lines = ["| sublayer | groups | median importance | q05 / q25 / q75 / q95 (× median) | below ½ median | corr. with weight RMS |",
             "|---|---:|---:|---|---:|---:|"]
    for s in stats:
        q = s["ratio_quantiles"]
        lines.append(f"| {s['side']} {s['layer']} {s['kind']} | {s['groups']} | {s['median']:.3g} | "
                     f"{q['q05']:.2f} / {q['q25']:.2f} / {q['q75']:.2f} / {q['q95']:.2f} | {s['below_half_median']} | {s['corr_with_rms']:+.2f} |")
    return "\n".join(lines)
