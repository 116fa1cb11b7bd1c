"""The dense model exported through optimum-onnx: what users would otherwise ship (the bench's peer)."""

from __future__ import annotations

from pathlib import Path

from ..runtime.features import FRAMES_PER_POSITION, window_samples
from ..runtime.fsutil import atomic_dir
from ..training.architecture import Architecture, resolve_model_dir

__all__ = ["export_optimum"]


def export_optimum(model_dir, out) -> Path:
    from transformers import WhisperConfig

    model_dir = resolve_model_dir(model_dir)
    cfg = WhisperConfig.from_pretrained(model_dir)
    arch, dense = Architecture.from_config(cfg), Architecture.dense(cfg)
    if not arch.same_shape(dense):
        raise ValueError(f"{model_dir} is pruned (layers differ in width); optimum assumes one head count for all "
                         "layers: export it with 'whisper-edge export' instead")
    from optimum.exporters.onnx import main_export

    import json
    import shutil
    import tempfile

    with atomic_dir(out, kind="optimum-export", inputs=[model_dir]) as tmp, tempfile.TemporaryDirectory() as src:
        src = Path(src) / "model"
        shutil.copytree(model_dir, src)
        if cfg.max_source_positions != 1500:
            # optimum sizes its dummy mel input from the feature extractor: make it match a trimmed audio context
            pp = src / "preprocessor_config.json"
            fe = json.loads(pp.read_text())
            fe.update(nb_max_frames=FRAMES_PER_POSITION * cfg.max_source_positions, n_samples=window_samples(cfg.max_source_positions),
                      chunk_length=cfg.max_source_positions // 50)
            pp.write_text(json.dumps(fe, indent=2))
        main_export(str(src), output=str(tmp), task="automatic-speech-recognition-with-past", opset=17,
                    device="cpu", no_post_process=False, nb_max_frames=2 * cfg.max_source_positions)
    return Path(out)


def export_ctranslate2(model_dir, out, quantization: str = "int8") -> Path:
    """The dense checkpoint converted to CTranslate2 (faster-whisper's engine) for the bench."""
    import shutil

    import ctranslate2

    model_dir = resolve_model_dir(model_dir)
    with atomic_dir(out, kind="ctranslate2-export", inputs=[model_dir]) as tmp:
        ctranslate2.converters.TransformersConverter(str(model_dir), copy_files=["tokenizer.json", "preprocessor_config.json"]).convert(
            str(tmp / "m"), quantization=quantization, force=True)
        for f in (tmp / "m").iterdir():
            shutil.move(str(f), tmp / f.name)
        (tmp / "m").rmdir()
        import json

        from transformers import WhisperConfig

        positions = WhisperConfig.from_pretrained(model_dir).max_source_positions
        pp = tmp / "preprocessor_config.json"
        fe = json.loads(pp.read_text())
        fe.update(nb_max_frames=FRAMES_PER_POSITION * positions, n_samples=window_samples(positions))  # the window the encoder takes
        pp.write_text(json.dumps(fe, indent=2))
    return Path(out)
