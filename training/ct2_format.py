"""Reader for CTranslate2 ``model.bin`` files (binary version 6; layout in ../shared/SOURCES.md).

numpy only. A truncated or altered file raises :class:`CT2FormatError` naming what was wrong.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["CT2FormatError", "CT2Model", "read_ct2_model"]

_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}  # 5 = bf16, handled below
_SUPPORTED_VERSIONS = (5, 6)


class CT2FormatError(ValueError):
    pass


@dataclass
class CT2Model:
    spec: str
    revision: int
    variables: dict[str, np.ndarray]

    def __getitem__(self, name: str) -> np.ndarray:
        try:
            return self.variables[name]
        except KeyError:
            raise CT2FormatError(f"model.bin has no variable {name!r}; is this a {self.spec} model?") from None


class _Cursor:
    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise CT2FormatError(
                f"{self.path} is truncated: reading {what} needs {n} bytes at offset {self.pos}, "
                f"but the file has {len(self.data)} bytes. Re-create or re-install the model."
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u8(self, what: str) -> int:
        return self.take(1, what)[0]

    def u16(self, what: str) -> int:
        return struct.unpack("<H", self.take(2, what))[0]

    def u32(self, what: str) -> int:
        return struct.unpack("<I", self.take(4, what))[0]

    def string(self, what: str) -> str:
        raw = self.take(self.u16(what), what)
        if not raw.endswith(b"\0"):
            raise CT2FormatError(f"{self.path}: {what} is not NUL-terminated at offset {self.pos}; the file is corrupt")
        try:
            return raw[:-1].decode("utf-8")
        except UnicodeDecodeError:
            raise CT2FormatError(f"{self.path}: {what} is not valid UTF-8 at offset {self.pos}; the file is corrupt") from None


def read_ct2_model(path: str | Path) -> CT2Model:
    path = Path(path)
    data = path.read_bytes()
    cur = _Cursor(data, path)
    version = cur.u32("the binary version")
    if version not in _SUPPORTED_VERSIONS:
        raise CT2FormatError(f"{path}: CTranslate2 binary version {version} is not supported (expected 5 or 6)")
    spec = cur.string("the spec name")
    revision = cur.u32("the spec revision")
    count = cur.u32("the variable count")
    if count > 100_000:
        raise CT2FormatError(f"{path}: implausible variable count {count}; the file is corrupt")
    variables: dict[str, np.ndarray] = {}
    for i in range(count):
        name = cur.string(f"the name of variable {i}")
        rank = cur.u8(f"the rank of {name}")
        dims = struct.unpack(f"<{rank}I", cur.take(4 * rank, f"the shape of {name}"))
        code = cur.u8(f"the dtype of {name}")
        nbytes = cur.u32(f"the size of {name}")
        raw = cur.take(nbytes, f"the values of {name}")
        if code == 5:  # bfloat16: the high half of a float32
            arr = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
        elif code in _DTYPES:
            arr = np.frombuffer(raw, dtype=_DTYPES[code])
        else:
            raise CT2FormatError(f"{path}: variable {name} has unknown dtype code {code}")
        expected = int(np.prod(dims)) if dims else 1
        if arr.size != expected:
            raise CT2FormatError(f"{path}: variable {name} holds {arr.size} values, its shape {dims} needs {expected}")
        variables[name] = arr.reshape(dims)
    for i in range(cur.u32("the alias count")):
        alias = cur.string(f"alias {i}")
        target = cur.string(f"the target of alias {alias}")
        if target not in variables:
            raise CT2FormatError(f"{path}: alias {alias} points to missing variable {target}")
        variables[alias] = variables[target]
    if cur.pos != len(data):
        raise CT2FormatError(f"{path}: {len(data) - cur.pos} unexpected bytes after the last alias; the file is corrupt")
    return CT2Model(spec=spec, revision=revision, variables=variables)
