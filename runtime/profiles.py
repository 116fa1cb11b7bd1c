"""Device profiles: one YAML per target (threads, execution providers, quantization, audio context,
beam, memory budget, target real-time factor), validated on load."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .features import AUDIO_WINDOWS
from .manifest import QUANTIZATIONS

__all__ = ["DeviceProfile", "ProfileError", "load_profile", "list_profiles", "SESSION_KEYS"]

# a profile's ``session`` keys → onnxruntime SessionOptions attributes (docs/devices.md, "Session options")
SESSION_KEYS = {"arena": "enable_cpu_mem_arena", "mem_pattern": "enable_mem_pattern", "release_memory": "release_memory",
                "audio_window": "audio_window", "exact_int8": "exact_int8"}

_DIR = Path(__file__).resolve().parent.parent / "device_profiles"


class ProfileError(ValueError):
    """A profile that cannot be used; the message names the field or the known profiles."""


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    description: str = ""
    arch: str = "x86_64"  # x86_64 | aarch64
    threads: int = 2
    providers: list = field(default_factory=lambda: ["CPUExecutionProvider"])
    quantization: str = "int8"  # none | int8 | fp16
    int8_activation: str = "u8"  # u8 | s8 (which activation type the target's int8 kernels prefer)
    audio_ctx: int = 1500
    beam: int = 1
    memory_budget_mb: int = 1024
    target_rtf: float = 0.5
    session: dict = field(default_factory=dict)  # session settings: arena, mem_pattern, release_memory (true/false)
    reasons: dict = field(default_factory=dict)  # field → why this value

    def __post_init__(self):
        types = {"threads": int, "audio_ctx": int, "beam": int, "memory_budget_mb": int, "target_rtf": (int, float)}
        for k, t in types.items():
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, t):
                raise ProfileError(f"profile {self.name}: field {k!r} must be a {'number' if k == 'target_rtf' else 'whole number'}, got {v!r}")
        checks = {"arch": self.arch in ("x86_64", "aarch64"), "threads": 1 <= self.threads <= 256,
                  "quantization": self.quantization in QUANTIZATIONS,
                  "int8_activation": self.int8_activation in ("u8", "s8"), "audio_ctx": 1 <= self.audio_ctx <= 1500,
                  "beam": self.beam >= 1, "memory_budget_mb": self.memory_budget_mb > 0, "target_rtf": self.target_rtf > 0,
                  "providers": isinstance(self.providers, list) and bool(self.providers)}
        for k, ok in checks.items():
            if not ok:
                raise ProfileError(f"profile {self.name}: field {k!r} has an invalid value {getattr(self, k)!r}")
        if not isinstance(self.session, dict):
            raise ProfileError(f"profile {self.name}: field 'session' must be a mapping of {', '.join(SESSION_KEYS)}")
        for k, v in self.session.items():
            if k not in SESSION_KEYS:
                raise ProfileError(f"profile {self.name}: unknown session setting {k!r}; allowed: {', '.join(SESSION_KEYS)}")
            if k == "audio_window":
                if v not in AUDIO_WINDOWS:
                    raise ProfileError(f"profile {self.name}: session setting 'audio_window' must be one of "
                                       f"{', '.join(AUDIO_WINDOWS)}, got {v!r}")
            elif not isinstance(v, bool):
                raise ProfileError(f"profile {self.name}: session setting {k!r} must be true or false, got {v!r}")

    def session_options(self) -> dict:
        """The profile's session settings as onnxruntime SessionOptions attributes (for Transcriber)."""
        return {SESSION_KEYS[k]: v for k, v in self.session.items()}


def list_profiles() -> list[str]:
    return sorted(p.stem for p in _DIR.glob("*.yaml"))


def load_profile(name_or_path: str | Path) -> DeviceProfile:
    p = Path(name_or_path)
    if not p.is_file():
        p = _DIR / f"{name_or_path}.yaml"
    if not p.is_file():
        raise ProfileError(f"unknown device profile {name_or_path!r}; known: {', '.join(list_profiles())} (or a YAML path)")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{p} is not valid YAML: {str(exc).splitlines()[0]}; fix the file or use a built-in profile "
                           f"({', '.join(list_profiles())})") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{p} must hold a mapping")
    names = {f.name for f in dataclasses.fields(DeviceProfile)}
    unknown = [k for k in data if k not in names]
    if unknown:
        raise ProfileError(f"{p}: unknown key {unknown[0]!r}; allowed: {', '.join(sorted(names))}")
    data.setdefault("name", p.stem)
    try:
        return DeviceProfile(**data)
    except TypeError as exc:
        raise ProfileError(f"{p}: {exc}") from None
