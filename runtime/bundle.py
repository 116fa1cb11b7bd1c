"""Bundle format: a folder (or one .tar archive) with manifest.json, ONNX graphs and tokenizer.json.

manifest.json::

    {"format": "whisper-edge-bundle", "format_version": 1,
     "architecture": {...per-layer record...}, "audio_ctx": 500, "n_mels": 80, "sample_rate": 16000,
     "mel": {"n_fft": 400, "hop": 160},
     "tokens": {"sot": 50258, "eot": 50257, "transcribe": 50359, "translate": 50358, "no_timestamps": 50363,
                "languages": {"hi": 50276, ...}, "suppress": [...], "begin_suppress": [...]},
     "language": "hi", "task": "transcribe", "vocab_map": null | [old ids...],
     "graphs": {"encoder": {"file": "encoder.onnx", "inputs": [...], "outputs": [...]}, "decoder": {...}},
     "quantization": "none" | "int8" | "fp16" | "int4" | "int8w",
     "files": {"encoder.onnx": {"bytes": N, "sha256": "..."}, ...},
     "provenance": {...}, "metrics": {...}}

The runtime verifies sizes and checksums before loading and refuses a newer format version.
"""

from __future__ import annotations

import json
import logging
import os
import tarfile
from pathlib import Path

__all__ = ["BundleError", "FORMAT", "FORMAT_VERSION", "read_manifest", "verify_bundle", "file_entry",
           "pack_archive", "unpack_archive", "open_bundle"]

from .bundled import sha256_file as _sha256  # noqa: E402  (one hashing helper for the package)
from .manifest import FORMAT, FORMAT_VERSION  # noqa: E402  (one owner: runtime/manifest.py)
log = logging.getLogger("whisper_edge")


class BundleError(ValueError):
    """A bundle that cannot be used; the message says why and what to do."""


def file_entry(path: Path) -> dict:
    return {"bytes": path.stat().st_size, "sha256": _sha256(path)}


def read_manifest(bundle: str | os.PathLike) -> dict:
    bundle = Path(bundle)
    path = bundle / "manifest.json"
    if not bundle.exists():
        raise BundleError(f"bundle {bundle} does not exist; create one with 'whisper-edge export'")
    if not path.is_file():
        raise BundleError(f"{bundle} has no manifest.json: not a whisper-edge bundle (create one with 'whisper-edge export')")
    try:
        m = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{path} is not valid JSON ({exc}); the bundle is damaged, export it again") from None
    from .manifest import ManifestError, parse_manifest

    try:
        parse_manifest(m, str(path))
    except ManifestError as exc:
        raise BundleError(str(exc)) from None
    return m


def verify_bundle(bundle: str | os.PathLike, *, checksums: bool = True) -> dict:
    """Check every listed file's size (and sha256); returns the manifest or raises BundleError naming the file."""
    bundle = Path(bundle)
    m = read_manifest(bundle)
    for name, entry in m["files"].items():
        p = bundle / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise BundleError(f"manifest lists an unsafe path {name!r}")
        if not p.is_file():
            raise BundleError(f"{bundle}: {name} is missing (listed in manifest.json)")
        size = p.stat().st_size
        if size != entry.get("bytes"):
            raise BundleError(f"{bundle}: {name} has {size} bytes, the manifest says {entry.get('bytes')}: "
                              "the file was changed or truncated; export the bundle again")
        if checksums and _sha256(p) != entry.get("sha256"):
            raise BundleError(f"{bundle}: {name} fails its sha256 check: the file was changed or damaged; "
                              "export the bundle again")
    for g in m["graphs"].values():
        if g["file"] not in m["files"]:
            raise BundleError(f"{bundle}: graph file {g['file']} is not listed under files")
    return m


def pack_archive(bundle: str | os.PathLike, archive: str | os.PathLike) -> Path:
    """Write the bundle as one uncompressed tar (ONNX weights do not compress much)."""

    from .fsutil import clean_stale

    bundle, archive = Path(bundle), Path(archive)
    verify_bundle(bundle)
    if archive.is_dir():
        raise BundleError(f"{archive} is a folder; give the archive's file name (for example {archive / bundle.name}.tar)")
    clean_stale(archive)
    tmp = archive.with_name(f".{archive.name}.tmp-{os.getpid()}")
    try:
        with tarfile.open(tmp, "w") as tar:
            for name in ["manifest.json", *read_manifest(bundle)["files"]]:
                tar.add(bundle / name, arcname=name, recursive=False)
        os.replace(tmp, archive)
    finally:
        if tmp.exists():
            tmp.unlink()
    return archive


def unpack_archive(archive: str | os.PathLike, dest: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Unpack a bundle archive, refusing absolute paths, '..', links and anything but plain files.

    ``dest`` must be new or empty, or (with ``overwrite``) a bundle; it may not contain the archive.
    """
    from .fsutil import atomic_dir, check_output

    archive, dest = Path(archive), Path(dest)
    check_output(dest, "bundle", overwrite=overwrite, inputs=[archive])
    try:
        tar = tarfile.open(archive, "r:*")
        members = tar.getmembers()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{archive} is not a readable bundle archive ({exc}); it is damaged or truncated — "
                          "copy or pack it again") from None
    with tar:
        for mem in members:
            p = Path(mem.name)
            if p.is_absolute() or ".." in p.parts:
                raise BundleError(f"{archive}: refusing member {mem.name!r} (absolute path or '..')")
            if mem.issym() or mem.islnk():
                raise BundleError(f"{archive}: refusing member {mem.name!r} (a link)")
            if not (mem.isfile() or mem.isdir()):
                raise BundleError(f"{archive}: refusing member {mem.name!r} (not a regular file)")
        _check_members(archive, tar, members)
        with atomic_dir(dest, kind="bundle", overwrite=overwrite, inputs=[archive]) as tmp:
            try:
                for mem in members:
                    if mem.isfile():
                        target = tmp / mem.name
                        target.parent.mkdir(parents=True, exist_ok=True)
                        with tar.extractfile(mem) as src, open(target, "wb") as out:
                            while chunk := src.read(1 << 20):
                                out.write(chunk)
            except (tarfile.TarError, OSError, EOFError) as exc:
                raise BundleError(f"{archive} is damaged or truncated ({exc}); copy or pack it again") from None
            verify_bundle(tmp)
    return dest


def _check_members(archive: Path, tar, members) -> None:
    """Before anything is written: the archive holds a manifest, only the files it lists, none larger than listed."""
    names = {m.name: m for m in members if m.isfile()}
    if "manifest.json" not in names:
        raise BundleError(f"{archive} has no manifest.json: not a whisper-edge bundle archive")
    if names["manifest.json"].size > 16 << 20:
        raise BundleError(f"{archive}: manifest.json is {names['manifest.json'].size} bytes; refusing it")
    try:
        with tar.extractfile(names["manifest.json"]) as f:
            listed = json.loads(f.read().decode("utf-8")).get("files", {})
    except (ValueError, UnicodeDecodeError, AttributeError, tarfile.TarError, OSError, EOFError) as exc:
        raise BundleError(f"{archive}: manifest.json is unreadable ({exc}); the archive is damaged") from None
    for name, mem in names.items():
        if name == "manifest.json":
            continue
        entry = listed.get(name) if isinstance(listed, dict) else None
        if not isinstance(entry, dict):
            raise BundleError(f"{archive}: member {name!r} is not listed in its manifest; refusing the archive")
        if mem.size != entry.get("bytes"):
            raise BundleError(f"{archive}: member {name!r} has {mem.size} bytes, the manifest lists {entry.get('bytes')}; "
                              "refusing the archive")


def open_bundle(path: str | os.PathLike, *, cache: str | os.PathLike | None = None) -> Path:
    """A bundle folder, or an archive unpacked once into the cache; returns the folder."""
    path = Path(path)
    if path.is_dir():
        return path
    if path.is_file():
        from .bundled import cache_root

        dest = Path(cache or cache_root() / "bundles") / f"{path.stem}-{_sha256(path)[:12]}"
        damaged = False
        if (dest / "manifest.json").is_file():
            try:
                verify_bundle(dest)
                return dest
            except BundleError as exc:  # a damaged cached copy is repaired from the archive, not trusted forever
                log.warning("cached copy of %s is damaged (%s); unpacking it again", path, exc)
                damaged = True
        from .fsutil import OutputError

        try:
            unpack_archive(path, dest, overwrite=damaged)
        except OutputError:  # another process unpacked it meanwhile: use its copy
            verify_bundle(dest)
        return dest
    raise BundleError(f"bundle {path} does not exist; create one with 'whisper-edge export'")
