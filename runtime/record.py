"""The per-layer architecture record: pure Python, so the runtime, the exporter and training read one truth.

    {"format": 1, "head_dim": 64, "d_model": 512, "audio_ctx": 1500,
     "encoder": [{"heads": 8, "ffn": 2048}, ...],
     "decoder": [{"self_heads": 8, "cross_heads": 8, "ffn": 2048}, ...]}

It lives in a checkpoint's config.json (``whisper_edge.architecture``), in the bundle manifest and in the
ONNX metadata. ``dense`` and ``from_config`` read a transformers WhisperConfig by attribute only (no import).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Architecture", "ArchitectureError", "RECORD_FORMAT"]

RECORD_FORMAT = 1


class ArchitectureError(ValueError):
    """A record or checkpoint whose shapes do not fit; the message names the layer."""


@dataclass
class Architecture:
    encoder: list[dict]
    decoder: list[dict]
    audio_ctx: int
    head_dim: int = 64
    d_model: int = 512
    format: int = RECORD_FORMAT
    extra: dict = field(default_factory=dict)

    @classmethod
    def dense(cls, config) -> "Architecture":
        hd = config.d_model // config.encoder_attention_heads
        return cls(
            encoder=[{"heads": config.encoder_attention_heads, "ffn": config.encoder_ffn_dim}
                     for _ in range(config.encoder_layers)],
            decoder=[{"self_heads": config.decoder_attention_heads, "cross_heads": config.decoder_attention_heads,
                      "ffn": config.decoder_ffn_dim} for _ in range(config.decoder_layers)],
            audio_ctx=config.max_source_positions, head_dim=hd, d_model=config.d_model,
        )

    @classmethod
    def from_config(cls, config) -> "Architecture":
        rec = (getattr(config, "whisper_edge", None) or {}).get("architecture")
        if rec is None:
            return cls.dense(config)
        arch = cls.from_dict(rec)
        if len(arch.encoder) != config.encoder_layers or len(arch.decoder) != config.decoder_layers:
            raise ArchitectureError(
                f"the architecture record has {len(arch.encoder)} encoder / {len(arch.decoder)} decoder layers but "
                f"the config says {config.encoder_layers} / {config.decoder_layers}")
        if arch.audio_ctx != config.max_source_positions:
            raise ArchitectureError(f"the record's audio_ctx {arch.audio_ctx} differs from max_source_positions "
                                    f"{config.max_source_positions} in config.json")
        return arch

    @classmethod
    def from_dict(cls, rec: dict) -> "Architecture":
        if not isinstance(rec, dict):
            raise ArchitectureError(f"architecture record must be a mapping, got {type(rec).__name__}")
        if rec.get("format", RECORD_FORMAT) > RECORD_FORMAT:
            raise ArchitectureError(f"architecture record format {rec['format']} is newer than this whisper-edge "
                                    f"understands ({RECORD_FORMAT}); upgrade whisper-edge")
        try:
            arch = cls(encoder=[dict(x) for x in rec["encoder"]], decoder=[dict(x) for x in rec["decoder"]],
                       audio_ctx=int(rec["audio_ctx"]), head_dim=int(rec.get("head_dim", 64)),
                       d_model=int(rec.get("d_model", 512)), format=int(rec.get("format", RECORD_FORMAT)),
                       extra=dict(rec.get("extra", {})))
        except (KeyError, TypeError) as exc:
            raise ArchitectureError(f"architecture record is missing or has a malformed field: {exc}") from None
        for side, keys in (("encoder", ("heads", "ffn")), ("decoder", ("self_heads", "cross_heads", "ffn"))):
            for i, layer in enumerate(getattr(arch, side)):
                for k in keys:
                    v = layer.get(k)
                    if not isinstance(v, int) or v < 0:
                        raise ArchitectureError(f"architecture record: {side} layer {i} field {k!r} must be an integer ≥ 0, got {v!r}")
        return arch

    def to_dict(self) -> dict:
        return {"format": self.format, "head_dim": self.head_dim, "d_model": self.d_model, "audio_ctx": self.audio_ctx,
                "encoder": self.encoder, "decoder": self.decoder} | ({"extra": self.extra} if self.extra else {})

    # derived facts, one owner each (the exporter, the runtime and the counts read these, never recompute them)
    @property
    def self_layers(self) -> list[int]:
        """Decoder layers whose self-attention keeps heads (they have a KV cache)."""
        return [i for i, l in enumerate(self.decoder) if l["self_heads"]]

    @property
    def cross_layers(self) -> list[int]:
        """Decoder layers whose cross-attention keeps heads (the encoder graph returns their K/V)."""
        return [i for i, l in enumerate(self.decoder) if l["cross_heads"]]

    def same_shape(self, other: "Architecture") -> bool:
        """True when every layer has the same heads and widths (e.g. a checkpoint against its dense config)."""
        return (self.encoder, self.decoder) == (other.encoder, other.decoder)

    def summary(self) -> str:
        enc = " ".join(f"{l['heads']}h/{l['ffn']}" for l in self.encoder)
        dec = " ".join(f"{l['self_heads']}+{l['cross_heads']}h/{l['ffn']}" for l in self.decoder)
        return f"encoder [{enc}]  decoder [{dec}]  audio_ctx {self.audio_ctx}"
