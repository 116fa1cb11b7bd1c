"""SmoothQuant folded into the encoder (exporter/smooth.py): exact in fp32, flatter activations for int8."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from whisper_edge.exporter.smooth import smooth_encoder
from whisper_edge.training.architecture import load_checkpoint


def _mels(model, n=3):
    rng = np.random.default_rng(0)
    return [rng.standard_normal((model.config.num_mel_bins, 2 * model.config.max_source_positions)).astype(np.float32)
            for _ in range(n)]


@pytest.mark.parametrize("which", ["tiny_model", "tiny_pruned"])
def test_smoothing_keeps_the_outputs_and_flattens_an_outlier_channel(which, request):
    model, _ = load_checkpoint(request.getfixturevalue(which))
    model.eval()
    layer = model.model.encoder.layers[0]
    with torch.no_grad():  # an outlier channel, as Whisper's encoder has: LayerNorm ×40, the readers' columns ÷40
        layer.final_layer_norm.weight[5] *= 40
        layer.final_layer_norm.bias[5] *= 40
        layer.fc1.weight[:, 5] /= 40
    mels = _mels(model)
    ids = torch.tensor([[model.config.decoder_start_token_id, 100, 200]])

    def logits():
        with torch.no_grad():
            return torch.cat([model(input_features=torch.from_numpy(m)[None], decoder_input_ids=ids).logits for m in mels])

    before = logits()
    stats = smooth_encoder(model, mels, alpha=0.5)
    after = logits()
    assert torch.allclose(before, after, atol=1e-3 * before.abs().max().item())
    assert stats["spread_before"]["ffn_ln"] > 5 and stats["spread_after"]["ffn_ln"] < stats["spread_before"]["ffn_ln"] / 2
    assert set(stats["spread_after"]) >= {"attn_ln", "ffn_ln", "out_ln"}


def test_smoothing_needs_clips_and_a_strength(tiny_model):
    model, _ = load_checkpoint(tiny_model)
    with pytest.raises(ValueError, match="calibration clips"):
        smooth_encoder(model, [], 0.5)
    with pytest.raises(ValueError, match="alpha"):
        smooth_encoder(model, _mels(model, 1), 1.5)


def test_export_options_refuse_smoothing_without_the_int8_encoder():
    from whisper_edge.exporter.export import ExportOptions

    with pytest.raises(ValueError, match="--int8-encoder"):
        ExportOptions(quantize="int8", smooth_alpha=0.5)
    assert ExportOptions(quantize="int8", int8_encoder=True, smooth_alpha=0.5).smooth_alpha == 0.5


def test_sensitivity_scan_groups_every_weight_and_mixed_precision_keeps_the_worst_fp32(tiny_model, tiny_bundle, tmp_path):
    import onnx

    from whisper_edge.exporter.export import ExportOptions, export_bundle
    from whisper_edge.exporter.quantize import MODES
    from whisper_edge.exporter.sensitivity import scan_encoder, weight_groups

    groups = weight_groups(tiny_bundle / "encoder.onnx")
    assert list(groups) == ["L0.qkv", "L0.out", "L0.fc1", "L0.fc2", "L1.qkv", "L1.out", "L1.fc1", "L1.fc2", "cross"]
    assert len(groups["L0.qkv"]) == 3 and len(groups["cross"]) == 4  # 2 decoder layers × K, V
    mels = [np.random.default_rng(i).standard_normal((80, 600)).astype(np.float32) for i in range(2)]
    rows = scan_encoder(tiny_bundle / "encoder.onnx", mels, MODES["int8"].apply)
    assert {r["group"] for r in rows} == set(groups) and rows[0]["gain"] >= rows[-1]["gain"]
    assert all(r["error_group_fp32"] <= r["error_all_int8"] + 1e-3 for r in rows[:3])
    clip = (np.random.default_rng(0).standard_normal(16000).astype(np.float32) * 0.05, "नमस्ते")
    m = export_bundle(tiny_model, tmp_path / "mixed", ExportOptions(quantize="int8", int8_encoder=True, encoder_fp32=2,
                                                                    smooth_alpha=0.5, wer_clips=(clip,)))
    kept = m["encoder_scan"]["fp32_groups"]
    assert len(kept) == 2 and m["smooth_quant"]["alpha"] == 0.5
    graph = onnx.load(str(tmp_path / "mixed" / "encoder.onnx")).graph
    float_mm = {n.name for n in graph.node if n.op_type == "MatMul"}
    assert all(name in float_mm for g in kept for name in groups[g])  # the chosen groups stay float MatMuls
    assert "MatMulInteger" in {n.op_type for n in graph.node}  # the rest is int8
    with pytest.raises(ValueError, match="--int8-encoder"):
        ExportOptions(quantize="int4", encoder_fp32=2)
