"""Training methods as hook objects: what dense fine-tuning, SGL and IMP add around the optimizer step.

The loop in training/train.py is the same for every method; it calls, in order,

* ``setup(...)`` once, after the model is prepared, before a checkpoint is resumed (SGL: the adaptive weights,
  measured on the starting model); ``resume(raw, state)`` after it (IMP: the masks of a resumed run);
* ``before_batch(raw, step, state)`` (IMP: prune at the start of a round);
* ``penalty(raw)``: a term added to the loss before ``backward`` (SGL in ``mode: loss``), or None;
* ``after_step(raw, lr)`` after ``optimizer.step()`` (SGL's proximal step; IMP re-applies its masks); returns the
  seconds it took;
* ``constrain(raw)`` on weights that did not come from a step (the recipe's ``ema`` average): IMP's masks;
* ``log(raw, step, validating)``: extra columns of log.csv (penalty, zero heads and channels, sparsity).

Adding a method is one class here and one entry in :data:`METHODS` (and its name in Recipe.method). Distillation
is not a method but a loss term any method can use (training/distill.py, ``distill.teacher`` in the recipe).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch

from .imp import imp_prune_, imp_schedule, prunable_weights, sparsity_report
from .sgl import sgl_penalty, sgl_prox_

__all__ = ["Method", "SGL", "IMP", "METHODS", "make_method"]

log = logging.getLogger("whisper_edge")


class Method:
    """Dense fine-tuning: every hook is a no-op."""

    name = "dense"

    def __init__(self, recipe):
        self.recipe = recipe

    def setup(self, accelerator, raw, processor, train_ds, out: Path) -> None:
        pass

    def resume(self, raw, state: dict) -> None:
        pass

    def before_batch(self, raw, step: int, state: dict, say=print) -> None:
        pass

    def penalty(self, raw) -> torch.Tensor | None:
        return None

    def after_step(self, raw, lr: float) -> float:
        return 0.0

    def constrain(self, raw) -> None:
        """What the method holds the weights to, applied to weights from elsewhere (the recipe's ``ema`` average)."""

    def log(self, raw, step: int, validating: bool) -> dict:
        if step % 10 == 0 or step == self.recipe.max_steps or validating:
            return {"weight_sparsity": sparsity_report(raw)["weight_sparsity"]} if self.name != "dense" else {}
        return {}


class SGL(Method):
    """Sparse Group LASSO (training/sgl.py): a penalty in the loss, or its proximal step after each update."""

    name = "sgl"

    def __init__(self, recipe):
        super().__init__(recipe)
        self.weights = None

    def setup(self, accelerator, raw, processor, train_ds, out):
        cfg = self.recipe.sgl
        if cfg.gamma > 0 or cfg.protect_quantile < 1:
            self.weights = _sgl_weights(accelerator, raw, processor, self.recipe, train_ds, out)

    def penalty(self, raw):
        return sgl_penalty(raw, self.recipe.sgl, self.weights) if self.recipe.sgl.mode == "loss" else None

    def after_step(self, raw, lr):
        if self.recipe.sgl.mode != "proximal":
            return 0.0
        t = time.perf_counter()
        sgl_prox_(raw, self.recipe.sgl, lr=lr, weights=self.weights)
        return time.perf_counter() - t

    def log(self, raw, step, validating):
        row = {}
        if step % 10 == 0 or step == self.recipe.max_steps or validating:
            rep = sparsity_report(raw)
            row = {k: rep[k] for k in ("zero_heads", "zero_channels", "weight_sparsity")}
            if self.recipe.sgl.mode == "proximal":
                row["penalty"] = float(sgl_penalty(raw, self.recipe.sgl, self.weights).detach())
        return row


class IMP(Method):
    """Iterative magnitude pruning (training/imp.py): prune at the start of each round, keep pruned weights at zero."""

    name = "imp"

    def __init__(self, recipe):
        super().__init__(recipe)
        self.schedule = imp_schedule(recipe.imp.target_sparsity, recipe.imp.rounds, recipe.max_steps, recipe.imp.sparsities,
                                     recipe.imp.round_steps)
        self.masks = None

    def resume(self, raw, state):
        state.setdefault("imp_round", 0)
        if state["imp_round"] > 0:  # a resumed run: the pruned weights are exact zeros
            self.masks = [(w != 0) for w in prunable_weights(raw)]

    def before_batch(self, raw, step, state, say=print):
        while state["imp_round"] < len(self.schedule) and step >= self.schedule[state["imp_round"]][0]:
            sparsity = self.schedule[state["imp_round"]][1]
            imp_prune_(raw, sparsity, self.recipe.imp.structured)
            self.masks = [(w != 0) for w in prunable_weights(raw)]
            state["imp_round"] += 1
            say(f"IMP round {state['imp_round']}: sparsity {sparsity:.3f}")

    def after_step(self, raw, lr):
        self.constrain(raw)
        return 0.0

    @torch.no_grad()
    def constrain(self, raw):
        if self.masks is not None:
            for w, m in zip(prunable_weights(raw), self.masks):
                w.mul_(m)

    def log(self, raw, step, validating):
        if step % 10 == 0 or step == self.recipe.max_steps or validating:
            rep = sparsity_report(raw)
            return {k: rep[k] for k in ("zero_heads", "zero_channels", "weight_sparsity")}
        return {}


METHODS = {"dense": Method, "sgl": SGL, "imp": IMP}


def make_method(recipe) -> Method:
    return METHODS[recipe.method](recipe)


def _sgl_weights(accelerator, raw, processor, recipe, train_ds, out: Path) -> list[torch.Tensor]:
    """Adaptive SGL weights, measured once on the starting model and kept in OUT/sgl_weights.pt, so a
    resumed run (and every process) uses exactly the same ones."""
    from tqdm.auto import tqdm

    from .importance import adaptive_weights, calibration_batches, group_importance
    from .precision import fp32_forward

    path = out / "sgl_weights.pt"
    if accelerator.is_main_process and not path.is_file():
        batches = calibration_batches(processor, train_ds, n_batches=recipe.sgl.calib_batches, batch_size=recipe.batch_size,
                                      audio_ctx=raw.config.max_source_positions, language=recipe.language,
                                      max_label_tokens=recipe.max_label_tokens, seed=recipe.seed + 1)
        log.info("measuring group importance on %d batches for adaptive SGL", len(batches))
        with fp32_forward(raw):
            imp = group_importance(raw, tqdm(batches, desc="importance", unit="batch", leave=False))
        tmp = path.with_suffix(".tmp")
        torch.save({"importance": imp, "weights": adaptive_weights(imp, recipe.sgl.gamma, recipe.sgl.w_max, recipe.sgl.protect_quantile)}, tmp)
        os.replace(tmp, path)
    accelerator.wait_for_everyone()
    return [w.to(accelerator.device) for w in torch.load(path)["weights"]]
