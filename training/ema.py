"""An exponential moving average of the weights (recipe field ``ema``): what a run validates and writes.

Session 34 found that drawing a 140-step recovery again (another clip order and augmentation) moved the pruned model's
validation WER by half a point (docs/results.md): the weights a short, noisy run happens to end at — or the checkpoint
a 144-clip validation happens to prefer — carry that draw. An average of the recent weights (Polyak averaging; the
"EMA" of many speech and vision recipes) smooths it. Training itself goes on with the raw weights; every validation,
snapshot and written model (OUT/model, OUT/last) uses the average, so the model selected is an averaged one.

The decay warms up as ``min(decay, (1 + n) / (10 + n))`` after n updates, so the first steps are not dominated by the
starting weights. The shadow copy is fp32 (one more copy of the trainable weights in memory) and is saved with every
training checkpoint, so a resumed run continues the same average.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

__all__ = ["WeightAverage"]


class WeightAverage:
    """The moving average of ``model``'s trainable parameters."""

    def __init__(self, model: torch.nn.Module, decay: float):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema decay must be within (0, 1), got {decay}")
        self.decay, self.updates = float(decay), 0
        self.shadow = {n: p.detach().float().clone() for n, p in model.named_parameters() if p.requires_grad}

    def rate(self) -> float:
        """The decay of the next update, warmed up: 0.1 for the first, ``decay`` from update 9 / (1 − decay) − 1 on (80 for 0.9)."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = self.rate()
        self.updates += 1
        for n, p in model.named_parameters():
            if n in self.shadow:
                self.shadow[n].lerp_(p.detach().float(), 1.0 - d)

    @contextmanager
    def applied(self, model: torch.nn.Module, constrain=None):
        """``model`` holds the averaged weights inside the block (``constrain(model)`` applied to them: IMP's masks),
        its own weights again after it."""
        params = {n: p for n, p in model.named_parameters() if n in self.shadow}
        kept = {n: p.detach().clone() for n, p in params.items()}
        with torch.no_grad():
            for n, p in params.items():
                p.copy_(self.shadow[n].to(p.dtype))
            if constrain is not None:
                constrain(model)
        try:
            yield model
        finally:
            with torch.no_grad():
                for n, p in params.items():
                    p.copy_(kept[n])

    # Accelerate's register_for_checkpointing: saved and loaded with the training state
    def state_dict(self) -> dict:
        return {"decay": self.decay, "updates": self.updates, "shadow": self.shadow}

    def load_state_dict(self, state: dict) -> None:
        if set(state["shadow"]) != set(self.shadow):
            raise ValueError("the checkpoint's weight average is of another model (other parameters); resume with the "
                             "same model and recipe or choose another --out")
        self.decay, self.updates = float(state["decay"]), int(state["updates"])
        self.shadow = {n: t.float().clone() for n, t in state["shadow"].items()}
