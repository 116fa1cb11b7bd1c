"""docs/bundle-format.md describes a real export: every manifest field, every graph input and output with its shape."""

from __future__ import annotations

import json
import re
from pathlib import Path

import onnxruntime as ort

DOC = Path(__file__).resolve().parents[2] / "docs" / "bundle-format.md"


def _table_rows(section: str) -> list[list[str]]:
    text = DOC.read_text(encoding="utf-8")
    part = text.split(section, 1)[1]
    rows = []
    for line in part.splitlines()[1:]:
        if line.startswith("#") or (rows and not line.startswith("|")):
            break  # the table ends at the next heading or the first line after it that is not a row
        if line.startswith("| ") and not line.startswith("|---"):
            rows.append([c.strip() for c in line.strip("|").split("|")])
    return rows[1:]  # without the header


def test_every_manifest_field_is_documented_and_nothing_else(tiny_bundle):
    manifest = json.loads((tiny_bundle / "manifest.json").read_text())
    documented = set()
    for row in _table_rows("## manifest.json"):
        documented |= set(re.findall(r"`([a-z_]+)`", row[0]))
    assert set(manifest) <= documented, set(manifest) - documented
    arch = manifest["architecture"]
    assert {"format", "head_dim", "d_model", "audio_ctx", "encoder", "decoder"} <= set(arch)
    assert set(manifest["tokens"]) == {"sot", "eot", "transcribe", "translate", "no_timestamps", "languages", "suppress",
                                       "begin_suppress"}


def _shape(doc: str, dims: dict) -> list:
    out = []
    for d in doc.strip("`[]").split(","):
        d = d.strip()
        if not d:
            continue
        out.append(dims.get(d, d))
    return out


def test_graph_tables_match_the_exported_graphs(tiny_bundle):
    m = json.loads((tiny_bundle / "manifest.json").read_text())
    A, D = m["audio_ctx"], m["architecture"]["head_dim"]
    for graph, section in (("encoder", "encoder.onnx\n"), ("decoder", "decoder.onnx\n")):
        sess = ort.InferenceSession(str(tiny_bundle / f"{graph}.onnx"))
        real = {i.name: (i.shape, i.type) for i in sess.get_inputs()} | {o.name: (o.shape, o.type) for o in sess.get_outputs()}
        rows = _table_rows("\n" + section)
        names_doc = set()
        for name_cell, direction, shape_cell, dtype in rows:
            for name in re.findall(r"`([a-z_{}]+)`", name_cell):
                if "{i}" in name:
                    layers = [n for n in real if re.fullmatch(name.replace("{i}", r"\d+"), n)]
                    assert layers, f"{graph}: no tensor matches {name}"
                else:
                    layers = [name]
                for n in layers:
                    names_doc.add(n)
                    shape, typ = real[n]
                    assert ("int64" in typ) == ("int64" in dtype), (n, typ, dtype)
                    want = _shape(shape_cell.split("`")[1] if "`" in shape_cell else shape_cell,
                                  {"n_mels": m["n_mels"], "2A": 2 * A, "A": A, "D": D})
                    assert len(want) == len(shape), (n, want, shape)
                    for w, s in zip(want, shape):
                        if isinstance(w, int):
                            assert s == w, (n, want, shape)
                        elif w.startswith("H_") or w == "V":
                            assert isinstance(s, int), (n, shape)
        assert names_doc == set(real), (graph, set(real) ^ names_doc)


def test_every_quantization_mode_is_one_a_bundle_may_declare():
    from whisper_edge.exporter.quantize import MODES
    from whisper_edge.runtime.manifest import QUANTIZATIONS

    assert set(MODES) == set(QUANTIZATIONS)
    for name, mode in MODES.items():
        assert set(mode.tolerance) == {"cross", "logits", "cache"} and mode.why, name
