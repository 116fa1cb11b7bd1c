"""Quantization modes: one registry entry each — how it is made, which graphs and ops it touches, its tolerance
against PyTorch and why. ``export --quantize NAME`` offers exactly these; a bundle records the name in its manifest
(runtime/manifest.py ``QUANTIZATIONS`` lists what a runtime accepts; a test keeps the two in step).

Adding a mode is one ``QuantMode`` entry with its ``apply``.

Weight-only modes (``int4``, ``int8w``): MatMul weights are stored in blocks of ``block`` input rows with one scale
(and zero point) per block and computed by ONNX Runtime's ``MatMulNBits`` contrib op with ``accuracy_level=4``
(int8 activations inside the kernel, the fast path measured in ../shared/SOURCES.md: 8-bit without it ran 7×
slower than fp32); the token embedding becomes ``GatherBlockQuantized`` (4-bit; at 8 bits dynamic int8 + DequantizeLinear). Activations stay float between ops, so
they apply to the encoder too (dynamic int8 moved its cross keys by up to 7 and cost Hindi WER).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["QuantMode", "MODES", "quantize_graphs"]


@dataclass(frozen=True)
class QuantMode:
    name: str
    tolerance: dict  # max |ONNX − PyTorch| per output family: cross (encoder K/V), logits, cache
    why: str  # why that tolerance (shown in docs/export.md)
    ops: tuple[str, ...] = ()  # the ONNX op types it rewrites
    apply: Callable[[Path, Path], None] | None = None  # one graph file src → dst
    encoder_by_default: bool = True  # False: the encoder stays fp32 unless asked (--int8-encoder)
    extra: dict = field(default_factory=dict)


def _int8_dynamic(src: Path, dst: Path, exclude: tuple[str, ...] = ()) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Per-channel int8 weights of the MatMul/Gather ops (the per-token cost and most of the bytes: the embedding
    # table); convolutions and LayerNorms stay fp32 (naive int8 of every op broke Hindi, ../shared/SOURCES.md).
    # ``exclude``: node names left fp32 (mixed precision from exporter/sensitivity.py's scan).
    quantize_dynamic(str(src), str(dst), per_channel=True, weight_type=QuantType.QInt8,
                     op_types_to_quantize=["MatMul", "Gemm", "Gather"], extra_options={"MatMulConstBOnly": True},
                     nodes_to_exclude=list(exclude))


def _fp16(src: Path, dst: Path) -> None:
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save_model(convert_float_to_float16(onnx.load(str(src)), keep_io_types=True, disable_shape_infer=False), str(dst))


def _untie_lookup(model):
    """The decoder's one (d_model, vocab) table feeds both the token Gather (axis 1) and the logits MatMul. Weight-only
    quantization rewrites each op with its own packed layout, so the lookup gets its own (vocab, d_model) copy,
    gathered on axis 0 and transposed back: both copies are quantized (MatMulNBits, GatherBlockQuantized)."""
    import numpy as np
    from onnx import helper, numpy_helper

    g = model.graph
    inits = {t.name: t for t in g.initializer}
    matmul_inputs = {i for n in g.node if n.op_type == "MatMul" for i in n.input}
    for k, node in enumerate(list(g.node)):
        axis = next((a.i for a in node.attribute if a.name == "axis"), 0)
        if node.op_type != "Gather" or axis != 1 or node.input[0] not in inits or node.input[0] not in matmul_inputs:
            continue
        table = numpy_helper.to_array(inits[node.input[0]])
        rows = numpy_helper.from_array(np.ascontiguousarray(table.T), f"{node.input[0]}_rows")
        g.initializer.append(rows)
        out = node.output[0]
        gathered = helper.make_node("Gather", [rows.name, node.input[1]], [f"{out}_rows"], name=f"{node.name}_rows", axis=0)
        back = helper.make_node("Transpose", [f"{out}_rows"], [out], name=f"{node.name}_back", perm=[1, 0])
        idx = list(g.node).index(node)
        g.node.remove(node)
        g.node.insert(idx, back)
        g.node.insert(idx, gathered)
    return model


def _weight_only(bits: int, block: int = 32, symmetric: bool = True):
    def apply(src: Path, dst: Path) -> None:
        import onnx
        from onnxruntime.quantization.matmul_nbits_quantizer import DefaultWeightOnlyQuantConfig, MatMulNBitsQuantizer

        try:
            import onnx_ir  # noqa: F401  (the quantizer needs it for the Gather rewrite)
        except ImportError:
            raise RuntimeError("weight-only quantization needs the onnx_ir package: pip install 'whisper-edge[export]'") from None
        # GatherBlockQuantized takes 4-bit data only: at 8 bits the lookup's copy goes through dynamic int8 instead
        ops = ("MatMul", "Gather") if bits == 4 else ("MatMul",)
        cfg = DefaultWeightOnlyQuantConfig(block_size=block, is_symmetric=symmetric, accuracy_level=4, bits=bits,
                                           op_types_to_quantize=ops, quant_axes=(("MatMul", 0), ("Gather", 1)))
        q = MatMulNBitsQuantizer(_untie_lookup(onnx.load(str(src))), algo_config=cfg)
        q.process()
        q.model.save_model_to_file(str(dst), use_external_data_format=False)
        if bits != 4:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            tmp = dst.with_name(dst.name + ".g")
            quantize_dynamic(str(dst), str(tmp), weight_type=QuantType.QInt8, op_types_to_quantize=["Gather"])
            os.replace(tmp, dst)
    return apply


MODES: dict[str, QuantMode] = {
    "none": QuantMode("none", {"cross": 2e-3, "logits": 2e-3, "cache": 2e-3},
                      "fp32 ONNX against fp32 PyTorch: only operator-order rounding differs"),
    "fp16": QuantMode("fp16", {"cross": 5e-2, "logits": 1.5e-1, "cache": 5e-2},
                      "fp16 weights and activations carry 11 bits of mantissa; inputs and outputs stay fp32",
                      ops=("*",), apply=_fp16),
    "int8": QuantMode("int8", {"cross": 1.0, "logits": 4.0, "cache": 1.0},
                      "dynamic int8 activations move tensors by up to about 1 without changing the text: int8 is judged "
                      "by WER against fp32 on validation clips (--data), the tensor bound only catches breakage",
                      ops=("MatMul", "Gemm", "Gather"), apply=_int8_dynamic, encoder_by_default=False),
    "int4": QuantMode("int4", {"cross": 2.0, "logits": 8.0, "cache": 2.0},
                      "4-bit weights in blocks of 32 (one scale each) move outputs by up to about 1–2 without changing "
                      "the text: judged by WER against fp32 on validation clips; the bound only catches breakage",
                      ops=("MatMul", "Gather"), apply=_weight_only(4, symmetric=False), extra={"block": 32, "accuracy_level": 4}),
    "int8w": QuantMode("int8w", {"cross": 1.0, "logits": 4.0, "cache": 1.0},
                       "8-bit weights in blocks of 32, activations float between ops: close to fp32; judged by WER too",
                       ops=("MatMul", "Gather"), apply=_weight_only(8), extra={"block": 32, "accuracy_level": 4}),
}


def quantize_graphs(folder: Path, mode: str, *, encoder: bool | None = None, encoder_exclude: tuple[str, ...] = ()) -> list[str]:
    """Rewrite the bundle's graphs in place with ``mode``; returns the files changed. ``encoder`` overrides the
    mode's default for the encoder graph (``--int8-encoder``); ``encoder_exclude`` names encoder nodes left fp32
    (int8 only)."""
    m = MODES[mode]
    if m.apply is None:
        return []
    if encoder_exclude and mode != "int8":
        raise ValueError(f"mixed precision (nodes left fp32) is offered for int8 only, not {mode}")
    with_encoder = m.encoder_by_default if encoder is None or not encoder else True
    files = ("encoder.onnx", "decoder.onnx") if with_encoder else ("decoder.onnx",)
    for f in files:
        src, dst = folder / f, folder / f"{f}.q"
        if f == "encoder.onnx" and encoder_exclude:
            m.apply(src, dst, exclude=encoder_exclude)
        else:
            m.apply(src, dst)
        os.replace(dst, src)
    return list(files)
