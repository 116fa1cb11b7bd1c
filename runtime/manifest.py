"""The bundle manifest: one typed, versioned schema. The exporter writes it, every reader validates it here.

Validation names the field that is wrong and refuses what this runtime does not support (another mel
setting, a newer format, a record that disagrees with the graph list). :func:`check_graphs` compares it
with the graphs' own inputs and outputs once ONNX Runtime has loaded them, so a manifest that lies about
the model is a clear error, not a shape error deep inside onnxruntime. docs/bundle-format.md documents
every field for people who write their own runtime.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .features import HOP, N_FFT, SAMPLE_RATE
from .record import Architecture, ArchitectureError

__all__ = ["FORMAT", "FORMAT_VERSION", "QUANTIZATIONS", "Manifest", "ManifestError", "Tokens", "Graph", "parse_manifest",
           "check_graphs", "encoder_frames_fixed"]

FORMAT, FORMAT_VERSION = "whisper-edge-bundle", 1
QUANTIZATIONS = ("none", "int8", "fp16", "int4", "int8w")


class ManifestError(ValueError):
    """A manifest that cannot be used; the message names the field and what to do."""


@dataclass(frozen=True)
class Tokens:
    sot: int
    eot: int
    transcribe: int
    translate: int | None
    no_timestamps: int
    languages: dict[str, int]
    suppress: tuple[int, ...] = ()
    begin_suppress: tuple[int, ...] = ()


@dataclass(frozen=True)
class Graph:
    file: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


@dataclass(frozen=True)
class Manifest:
    format_version: int
    architecture: Architecture
    audio_ctx: int
    n_mels: int
    tokens: Tokens
    graphs: dict[str, Graph]
    files: dict[str, dict]
    language: str = "hi"
    task: str = "transcribe"
    quantization: str = "none"
    vocab_size: int | None = None
    vocab_map: tuple[int, ...] | None = None
    dynamic_ctx: dict | None = None  # {"block", "margin"} (positions): the model was trained to encode shorter windows
    extra: dict = field(default_factory=dict)  # provenance, metrics, validation, profile …: informative only


def _need(d: dict, key: str, kind, where: str, what: str):
    if key not in d:
        raise ManifestError(f"{where}: field {key!r} is missing; the bundle is damaged or was edited — export it again")
    v = d[key]
    ok = isinstance(v, kind) and not (kind is int and isinstance(v, bool)) and not (kind is not bool and isinstance(v, bool))
    if not ok:
        raise ManifestError(f"{where}: field {key!r} must be {what}, got {v!r}")
    return v


def _int_list(v, where: str, key: str) -> tuple[int, ...]:
    if not isinstance(v, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in v):
        raise ManifestError(f"{where}: field {key!r} must be a list of token ids")
    return tuple(v)


def parse_manifest(d, where: str = "manifest.json") -> Manifest:
    """Validate a manifest dict into a :class:`Manifest`, or raise ManifestError naming the field."""
    if not isinstance(d, dict):
        raise ManifestError(f"{where} must hold a JSON object, got {type(d).__name__}")
    if d.get("format") != FORMAT:
        raise ManifestError(f"{where} is not a whisper-edge bundle manifest (format {d.get('format')!r})")
    v = _need(d, "format_version", int, where, "an integer")
    if v > FORMAT_VERSION:
        raise ManifestError(f"{where}: bundle format version {v} is newer than this runtime reads ({FORMAT_VERSION}); "
                            "upgrade whisper-edge or export the bundle with this version")
    if v < 1:
        raise ManifestError(f"{where}: field 'format_version' must be ≥ 1, got {v}; the manifest was edited")
    try:
        arch = Architecture.from_dict(_need(d, "architecture", dict, where, "a mapping (the per-layer record)"))
    except ArchitectureError as exc:
        raise ManifestError(f"{where}: field 'architecture': {exc}") from None
    audio_ctx = _need(d, "audio_ctx", int, where, "an integer")
    if audio_ctx != arch.audio_ctx or not 1 <= audio_ctx <= 1500:
        raise ManifestError(f"{where}: field 'audio_ctx' is {audio_ctx} but the architecture record says "
                            f"{arch.audio_ctx} (and it must lie within 1…1500)")
    n_mels = d.get("n_mels", 80)
    if n_mels not in (80, 128) or isinstance(n_mels, bool):
        raise ManifestError(f"{where}: field 'n_mels' must be 80 or 128, got {n_mels!r}")
    mel = d.get("mel", {"n_fft": N_FFT, "hop": HOP})
    rate = d.get("sample_rate", SAMPLE_RATE)
    if not isinstance(mel, dict) or mel.get("n_fft") != N_FFT or mel.get("hop") != HOP or rate != SAMPLE_RATE:
        raise ManifestError(f"{where}: fields 'mel' / 'sample_rate' say {mel!r} at {rate!r} Hz; this runtime computes "
                            f"n_fft {N_FFT}, hop {HOP} at {SAMPLE_RATE} Hz only, and would decode such a bundle wrongly")
    t = _need(d, "tokens", dict, where, "a mapping")
    try:
        langs = t["languages"]
        if not isinstance(langs, dict) or not all(isinstance(x, int) for x in langs.values()):
            raise TypeError("languages")
        tokens = Tokens(sot=int(t["sot"]), eot=int(t["eot"]), transcribe=int(t["transcribe"]),
                        translate=t.get("translate"), no_timestamps=int(t["no_timestamps"]), languages=dict(langs),
                        suppress=_int_list(t.get("suppress", []), where, "tokens.suppress"),
                        begin_suppress=_int_list(t.get("begin_suppress", []), where, "tokens.begin_suppress"))
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"{where}: field 'tokens' is missing or malforms {exc}") from None
    graphs = {}
    g = _need(d, "graphs", dict, where, "a mapping")
    for name in ("encoder", "decoder"):
        e = g.get(name)
        if not isinstance(e, dict) or not isinstance(e.get("file"), str):
            raise ManifestError(f"{where}: field 'graphs.{name}' must name its file")
        ins, outs = e.get("inputs"), e.get("outputs")
        if not (isinstance(ins, list) and isinstance(outs, list)):
            raise ManifestError(f"{where}: field 'graphs.{name}' must list its inputs and outputs")
        graphs[name] = Graph(e["file"], tuple(ins), tuple(outs))
    want_cross = tuple(n for i in arch.cross_layers for n in (f"cross_k_{i}", f"cross_v_{i}"))
    if graphs["encoder"].outputs != want_cross:
        raise ManifestError(f"{where}: field 'graphs.encoder.outputs' {list(graphs['encoder'].outputs)} does not match the "
                            f"architecture record's cross-attention layers {arch.cross_layers}")
    want_self = tuple(n for i in arch.self_layers for n in (f"self_k_{i}", f"self_v_{i}"))
    if tuple(x for x in graphs["decoder"].inputs if x.startswith("self_")) != want_self:
        raise ManifestError(f"{where}: field 'graphs.decoder.inputs' does not match the architecture record's "
                            f"self-attention layers {arch.self_layers}")
    files = _need(d, "files", dict, where, "a mapping of file → {bytes, sha256}")
    for fname, entry in files.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("bytes"), int) or not isinstance(entry.get("sha256"), str):
            raise ManifestError(f"{where}: field 'files.{fname}' must have integer 'bytes' and a 'sha256'")
    quant = d.get("quantization", "none")
    if quant not in QUANTIZATIONS:
        raise ManifestError(f"{where}: field 'quantization' must be one of {', '.join(QUANTIZATIONS)}, got {quant!r}")
    vmap = d.get("vocab_map")
    if vmap is not None:
        vmap = _int_list(vmap, where, "vocab_map")
    dyn = _dynamic_ctx(d.get("dynamic_ctx"), audio_ctx, where)
    language = d.get("language", "hi")
    if not isinstance(language, str) or (language not in tokens.languages):
        raise ManifestError(f"{where}: field 'language' {language!r} is not among the bundle's languages")
    known = {"format", "format_version", "architecture", "audio_ctx", "n_mels", "mel", "sample_rate", "tokens", "graphs",
             "files", "quantization", "vocab_map", "vocab_size", "language", "task", "dynamic_ctx"}
    return Manifest(format_version=v, architecture=arch, audio_ctx=audio_ctx, n_mels=n_mels, tokens=tokens, graphs=graphs,
                    files=files, language=language, task=str(d.get("task", "transcribe")), quantization=quant,
                    vocab_size=d.get("vocab_size"), vocab_map=vmap, dynamic_ctx=dyn, extra={k: x for k, x in d.items() if k not in known})


def _dynamic_ctx(v, audio_ctx: int, where: str) -> dict | None:
    if v is None:
        return None
    ok = isinstance(v, dict) and set(v) == {"block", "margin"} and all(
        isinstance(v[k], int) and not isinstance(v[k], bool) for k in v)
    if not ok or not (1 <= v["block"] <= audio_ctx and 0 <= v["margin"] < audio_ctx):
        raise ManifestError(f"{where}: field 'dynamic_ctx' must be null or {{\"block\": 1…{audio_ctx}, \"margin\": "
                            f"0…{audio_ctx - 1}}} (encoder positions), got {v!r}")
    return dict(v)


def encoder_frames_fixed(encoder_session) -> bool:
    """Whether the encoder graph takes one fixed number of mel frames (bundles exported before the dynamic frame axis)."""
    shape = next((i.shape for i in encoder_session.get_inputs() if i.name == "mel"), None)
    return shape is not None and len(shape) == 3 and isinstance(shape[2], int)


def check_graphs(m: Manifest, encoder_session, decoder_session, where: str) -> None:
    """Compare the manifest with the loaded graphs' inputs and outputs (names, then static dimensions)."""
    enc_in = {i.name: i.shape for i in encoder_session.get_inputs()}
    enc_out = [o.name for o in encoder_session.get_outputs()]
    dec_in = {i.name: i.shape for i in decoder_session.get_inputs()}
    if "mel" not in enc_in:
        raise ManifestError(f"{where}: the encoder graph has no 'mel' input (it has {list(enc_in)})")
    shape = enc_in["mel"]
    want = (m.n_mels, 2 * m.audio_ctx)
    got = tuple(shape[1:3]) if len(shape) == 3 else None
    if got is None or any(isinstance(g, int) and g != w for g, w in zip(got, want)):
        raise ManifestError(f"{where}: the encoder takes mel of shape {shape}, but the manifest's n_mels / audio_ctx say "
                            f"[batch, {want[0]}, {want[1]}]; the manifest was edited or belongs to another bundle")
    if not isinstance(got[1], int):  # a free frame axis: the graph's own metadata says its audio context
        try:
            declared = encoder_session.get_modelmeta().custom_metadata_map.get("whisper_edge.audio_ctx")
        except AttributeError:  # a session object without metadata (not onnxruntime's)
            declared = None
        if declared is not None and str(declared) != str(m.audio_ctx):
            raise ManifestError(f"{where}: field 'audio_ctx' is {m.audio_ctx} but the encoder graph was exported with "
                                f"{declared} positions; the manifest was edited or belongs to another bundle")
    if m.dynamic_ctx and encoder_frames_fixed(encoder_session):
        raise ManifestError(f"{where}: field 'dynamic_ctx' says the encoder takes shorter windows, but its graph takes a "
                            f"fixed {shape[2]} frames; the manifest was edited or belongs to another bundle")
    if list(m.graphs["encoder"].outputs) != enc_out:
        raise ManifestError(f"{where}: the encoder graph returns {enc_out}, the manifest lists {list(m.graphs['encoder'].outputs)}")
    missing = [n for n in m.graphs["decoder"].inputs if n not in dec_in]
    if missing:
        raise ManifestError(f"{where}: the decoder graph lacks the inputs {missing} that the manifest lists")
    arch = m.architecture
    for i in arch.self_layers:
        _dims(dec_in[f"self_k_{i}"], {1: arch.decoder[i]["self_heads"], 3: arch.head_dim}, f"self_k_{i}", where)
    for i in arch.cross_layers:
        _dims(dec_in[f"cross_k_{i}"], {1: arch.decoder[i]["cross_heads"], 2: m.audio_ctx, 3: arch.head_dim}, f"cross_k_{i}", where)


def _dims(shape, want: dict[int, int], name: str, where: str) -> None:
    for axis, w in want.items():
        if axis < len(shape) and isinstance(shape[axis], int) and shape[axis] != w:
            raise ManifestError(f"{where}: decoder input {name} has shape {shape}, but the manifest's architecture record "
                                f"implies {w} at axis {axis}; the manifest was edited or belongs to another bundle")
