"""exporter/ggml.py: the whisper.cpp model file, read back here and loaded by whisper.cpp itself when pywhispercpp is installed."""

import struct

import numpy as np
import pytest

from whisper_edge.exporter.ggml import GgmlError, hf_to_openai_name, read_ggml_header, write_ggml


@pytest.fixture(scope="module")
def tiny_4x(whisper_base, tmp_path_factory):
    """A tiny random Whisper with whisper.cpp's FFN width (4 × d_model)."""
    from whisper_edge.training.tiny import tiny_whisper

    return tiny_whisper(whisper_base, tmp_path_factory.mktemp("models") / "tiny4x", d_model=128, heads=2, ffn=512,
                        audio_ctx=300)


def _read_tensors(path):
    """Every tensor of a ggml file: name → (type, shape as numpy, raw bytes)."""
    buf = open(path, "rb").read()
    pos = 48
    n_mels, n_fft = struct.unpack_from("<ii", buf, pos)
    pos += 8 + 4 * n_mels * n_fft
    (n_tok,) = struct.unpack_from("<i", buf, pos)
    pos += 4
    tokens = []
    for _ in range(n_tok):
        (n,) = struct.unpack_from("<i", buf, pos)
        tokens.append(buf[pos + 4: pos + 4 + n])
        pos += 4 + n
    out = {}
    while pos < len(buf):
        n_dims, n_name, kind = struct.unpack_from("<iii", buf, pos)
        dims = struct.unpack_from(f"<{n_dims}i", buf, pos + 12)
        name = buf[pos + 12 + 4 * n_dims: pos + 12 + 4 * n_dims + n_name].decode()
        pos += 12 + 4 * n_dims + n_name
        count = int(np.prod(dims))
        size = {0: 4 * count, 1: 2 * count, 8: count // 32 * 34}[kind]
        out[name] = (kind, tuple(reversed(dims)), buf[pos: pos + size])
        pos += size
    return (n_mels, n_fft), tokens, out


def test_f16_file_holds_every_tensor_under_whisper_cpp_names_and_q8_0_dequantizes_close(tiny_4x, tmp_path):
    from safetensors.numpy import load_file

    weights = load_file(str(tiny_4x / "model.safetensors"))
    f16 = write_ggml(tiny_4x, tmp_path / "f16.bin")
    hp = read_ggml_header(f16)
    assert hp == {"n_vocab": 51865, "n_audio_ctx": 300, "n_audio_state": 128, "n_audio_head": 2, "n_audio_layer": 2,
                  "n_text_ctx": 448, "n_text_state": 128, "n_text_head": 2, "n_text_layer": 2, "n_mels": 80, "ftype": 1}
    (n_mels, n_fft), tokens, tensors = _read_tensors(f16)
    assert (n_mels, n_fft) == (80, 201) and len(tokens) == 50257
    assert tokens[0] == b"!" and tokens[220] == b" "  # byte-level characters mapped back to bytes ("Ġ" → space)
    expected = {hf_to_openai_name(k) for k in weights} - {None}
    assert set(tensors) == expected and "encoder.blocks.1.mlp.2.weight" in tensors
    kind, shape, raw = tensors["decoder.blocks.0.cross_attn.key.weight"]
    w = weights["model.decoder.layers.0.encoder_attn.k_proj.weight"]
    assert kind == 1 and shape == w.shape
    np.testing.assert_allclose(np.frombuffer(raw, "<f2").reshape(shape), w, atol=1e-3, rtol=1e-3)
    assert tensors["encoder.conv1.bias"][:2] == (0, (128, 1)) and tensors["encoder.positional_embedding"][0] == 0

    q8 = write_ggml(tiny_4x, tmp_path / "q8.bin", ftype="q8_0")
    assert read_ggml_header(q8)["ftype"] == 2007 and q8.stat().st_size < 0.6 * f16.stat().st_size
    _, _, qt = _read_tensors(q8)
    kind, shape, raw = qt["encoder.blocks.0.mlp.0.weight"]
    blocks = np.frombuffer(raw, dtype=[("d", "<f2"), ("qs", "i1", (32,))])
    deq = (blocks["d"].astype(np.float32)[:, None] * blocks["qs"]).reshape(shape)
    w = weights["model.encoder.layers.0.fc1.weight"]
    assert kind == 8 and np.abs(deq - w).max() <= np.abs(w).max() / 127 * 0.51 + 1e-4
    assert qt["encoder.conv1.weight"][0] == 1 and qt["decoder.positional_embedding"][0] == 0  # 3-D stays f16


def test_a_pruned_checkpoint_is_refused_with_the_reason(tiny_pruned, tmp_path):
    with pytest.raises(GgmlError, match="whisper.cpp needs every layer"):
        write_ggml(tiny_pruned, tmp_path / "x.bin")
    assert not (tmp_path / "x.bin").exists()


def test_whisper_cpp_loads_the_file_and_decodes(tiny_4x, tmp_path):
    pytest.importorskip("pywhispercpp")
    from whisper_edge.peers.whispercpp import make, prepare

    path = prepare(tiny_4x, tmp_path / "peer", ftype="q8_0")
    peer = make(str(path), threads=1, beam=1, language="hi")  # whisper.cpp's loader checks every tensor's name, type, shape
    peer.max_new_tokens = 8
    text, parts = peer.transcribe(np.zeros(16000 * 7, np.float32))
    assert isinstance(text, str) and parts["windows"] == 2  # 7 s in whisper.cpp's 6-s windows (audio_ctx 300)
