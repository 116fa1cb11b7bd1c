"""int8 on x86 CPUs without VNNI: the saturation the runtime's exact_int8 setting avoids (runtime/cpu.py)."""

import numpy as np
import pytest

from whisper_edge.runtime.cpu import EXACT_INT8_ENTRY, exact_int8, int8_kernel


def test_int8_kernel_is_read_from_the_cpu_flags():
    assert int8_kernel({"avx2", "avx512_vnni"}, "x86_64") == "vnni"
    assert int8_kernel({"avx2", "avx_vnni"}, "x86_64") == "vnni"
    assert int8_kernel({"sse4_1", "avx", "avx2", "fma"}, "x86_64") == "u8s8-saturating"  # AVX2 only (Zen 1–3, Haswell)
    assert int8_kernel({"avx2", "avx512f", "avx512bw"}, "x86_64") == "u8s8-saturating"  # AVX-512 without VNNI (Skylake)
    assert int8_kernel(set(), "aarch64") == "arm" and int8_kernel(set(), "x86_64") == "unknown"


def _saturating_matmul(tmp_path):
    """A MatMul whose int8 form saturates 16-bit pair sums: weights ±1 (int8 ±127 per channel) and activations 1 (uint8
    255), so each pair is 2 · 255 · 127 = 64,770 > 32,767. Quantized by the exporter's own int8 mode."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from whisper_edge.exporter.quantize import MODES

    k = 512
    w = np.ones((k, 4), np.float32)
    w[:, 1] = -1.0
    w[::2, 2] = -1.0  # pairs that cancel: never saturate
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, k])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 4])],
                              [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "fp32.onnx")
    MODES["int8"].apply(tmp_path / "fp32.onnx", tmp_path / "int8.onnx", ())
    x = np.ones((2, k), np.float32)
    return tmp_path / "int8.onnx", x, x @ w


def test_exact_int8_computes_the_saturating_matmul_exactly_on_every_cpu(tmp_path):
    import onnxruntime as ort

    path, x, want = _saturating_matmul(tmp_path)

    def run(exact: bool) -> np.ndarray:
        so = ort.SessionOptions()
        if exact:
            exact_int8(so)
        return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

    np.testing.assert_allclose(run(True), want, atol=0.02 * 512)  # int8 rounding only
    plain = run(False)
    kernel = int8_kernel()
    if kernel == "u8s8-saturating":  # what the setting exists for: about half of every saturated sum is lost
        assert abs(plain[0, 0]) < 0.6 * 512 and plain[0, 2] == pytest.approx(0, abs=1)
    elif kernel in ("vnni", "arm"):
        np.testing.assert_allclose(plain, want, atol=0.02 * 512)


def test_the_runtime_sets_exact_int8_unless_a_profile_turns_it_off(tiny_bundle, tmp_path):
    from whisper_edge.runtime.profiles import load_profile
    from whisper_edge.runtime.transcribe import Transcriber

    key = EXACT_INT8_ENTRY[0]
    assert Transcriber(tiny_bundle).encoder.get_session_options().get_session_config_entry(key) == "1"
    prof = tmp_path / "p.yaml"
    prof.write_text("session: {exact_int8: false}\n")
    so = Transcriber(tiny_bundle, session_options=load_profile(prof).session_options()).decoder.get_session_options()
    with pytest.raises(RuntimeError, match="does not have configuration"):  # onnxruntime's answer for an unset key
        so.get_session_config_entry(key)


def test_bench_runs_a_bundle_once_per_exact_int8_setting(tiny_bundle, speech_corpus, tmp_path, capsys):
    import json

    from whisper_edge.cli import main

    out = tmp_path / "bench"
    assert main(["bench", "--bundle", str(tiny_bundle), "--data", str(speech_corpus), "--limit", "1", "--repeats", "1",
                 "--max-new-tokens", "3", "--exact-int8", "on,off", "--out", str(out)]) == 0
    report = json.loads((out / "bench.json").read_text())
    assert [r["label"] for r in report["rows"]] == ["tiny [exact_int8 on]", "tiny [exact_int8 off]"]
    assert all("error" not in r for r in report["rows"]) and report["machine"]["int8_kernel"] == int8_kernel()
    assert main(["bench", "--bundle", str(tiny_bundle), "--data", str(speech_corpus), "--exact-int8", "maybe",
                 "--out", str(tmp_path / "b2")]) == 2
    assert "--exact-int8: unknown ['maybe']" in capsys.readouterr().err and not (tmp_path / "b2").exists()


def test_turning_exact_int8_off_where_int8_saturates_is_warned_about(tiny_model, tmp_path, monkeypatch, caplog):
    import logging

    from whisper_edge.exporter.export import ExportOptions, export_bundle
    from whisper_edge.runtime import transcribe
    from whisper_edge.runtime.transcribe import Transcriber

    bundle = tmp_path / "int8"
    export_bundle(tiny_model, bundle, ExportOptions(quantize="int8"))
    monkeypatch.setattr(transcribe, "int8_kernel", lambda: "u8s8-saturating")
    with caplog.at_level(logging.WARNING, logger="whisper_edge"):
        Transcriber(bundle)  # on by default: nothing to say
        assert "saturate" not in caplog.text
        Transcriber(bundle, session_options={"exact_int8": False})
    assert "exact_int8 is off on an x86 CPU without VNNI" in caplog.text
    monkeypatch.setattr(transcribe, "int8_kernel", lambda: "vnni")
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="whisper_edge"):
        Transcriber(bundle, session_options={"exact_int8": False})  # exact anyway on VNNI: no warning
    assert "saturate" not in caplog.text
