"""The dense model exported through optimum-onnx: what users would otherwise ship (the bench's peer)."""

from __future__ import annotations

from pathlib import Path

from ..runtime.fsutil import atomic_dir
from ..training.architecture import Architecture, resolve_model_dir

__all__ = ["export_optimum"]


def export_optimum(model_dir, out) -> Path:
    from transformers import WhisperConfig

    model_dir = resolve_model_dir(model_dir)
    cfg = WhisperConfig.from_pretrained(model_dir)
    arch, dense = Architecture.from_config(cfg), Architecture.dense(cfg)
    if (arch.encoder, arch.decoder) != (dense.encoder, dense.decoder):
        raise ValueError(f"{model_dir} is pruned (layers differ in width); optimum assumes one head count for all "
                         "layers: export it with 'whisper-edge export' instead")
    from optimum.exporters.onnx import main_export

    with atomic_dir(out) as tmp:
        main_export(str(model_dir), output=str(tmp), task="automatic-speech-recognition-with-past", opset=17,
                    device="cpu", no_post_process=False)
    return Path(out)
