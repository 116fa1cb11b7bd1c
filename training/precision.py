"""Mixed precision on CPU and GPU: what ``mixed_precision: auto`` picks, and how validation stays fp32."""

from __future__ import annotations

import os

import torch

__all__ = ["cpu_has_bf16", "mixed_precision", "fp32_forward", "fresh_accelerate_state"]


def cpu_has_bf16() -> bool:
    """True where the CPU computes bfloat16 natively (AVX512-BF16 or AMX): autocast is then 1.6–1.8× faster
    per Whisper-base step on this project's machines (docs/pruning.md); elsewhere bf16 is emulated and slower."""
    from ..runtime.cpu import cpu_flags

    return bool(cpu_flags() & {"avx512_bf16", "amx_bf16"})


def mixed_precision(name: str) -> str:
    """auto: bf16 on a GPU that has it (else fp16); on a CPU bf16 where it is native, fp32 elsewhere."""
    if name != "auto":
        return name
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "bf16" if cpu_has_bf16() else "no"


class fp32_forward:
    """Within the block, the model prepared by Accelerate runs its original fp32 forward (no autocast):
    validation, feature extraction, importance and least-squares statistics stay in float32. Restores the
    autocast forward on exit."""

    def __init__(self, model):
        self.model = model
        self.saved = None

    def __enter__(self):
        d = self.model.__dict__
        if "_original_forward" in d and "forward" in d:
            self.saved = d["forward"]
            self.model.forward = d["_original_forward"]
        return self.model

    def __exit__(self, *exc):
        if self.saved is not None:
            self.model.forward = self.saved
        return False


def fresh_accelerate_state() -> None:
    """Forget an earlier Accelerator of this process (an experiment trains several stages, possibly with
    different precisions; Accelerate otherwise refuses a second mixed_precision). Single-process runs only:
    under `accelerate launch` the launcher owns the state."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return
    from accelerate.state import AcceleratorState, GradientState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
