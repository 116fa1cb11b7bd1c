"""Atomic writes that never lose a user's data.

A reader never sees a half-written file or folder, a failure leaves nothing behind, and a folder is
replaced only when whisper-edge made it: every output folder carries a small marker file naming its
kind (bundle, checkpoint, corpus, …), and an existing folder is replaced only when it holds the
marker of the same kind and the caller asked for it (``overwrite=True``, the CLI's ``--overwrite``).
A non-empty folder without the marker is refused, and so is an output that contains one of the
command's inputs or lies inside one. Temporary folders left by a killed run are removed by the next one.
A folder filled in place (a run, a corpus, an experiment) is locked while a process writes it: a second
whisper-edge process given the same folder is refused instead of writing the same files at the same time.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .manifest import FORMAT as BUNDLE_FORMAT

__all__ = ["MARKER", "OutputError", "atomic_dir", "atomic_write_bytes", "atomic_write_json", "atomic_write_text",
           "check_output", "claim_folder", "clean_stale", "lock_folder", "output_kind", "write_marker"]

log = logging.getLogger("whisper_edge")

MARKER = ".whisper-edge-output"  # JSON {"kind": …}; its presence says "whisper-edge made this folder"
LOCK = ".whisper-edge-lock"  # holds the writing process's id; locked (flock) while that process lives
_held: dict[Path, int] = {}  # folder → the descriptor of its lock file this process holds


class OutputError(FileExistsError):
    """An output location that whisper-edge refuses to write (it would lose data)."""


def output_kind(folder: Path) -> str | None:
    """The kind of whisper-edge output ``folder`` holds, or None if it is not one of ours."""
    marker = folder / MARKER
    if marker.is_file():
        try:
            return str(json.loads(marker.read_text(encoding="utf-8"))["kind"])
        except (ValueError, KeyError, TypeError, OSError):
            return None
    manifest = folder / "manifest.json"  # bundles written before the marker existed
    if manifest.is_file():
        with contextlib.suppress(ValueError, OSError, AttributeError):
            if json.loads(manifest.read_text(encoding="utf-8")).get("format") == BUNDLE_FORMAT:
                return "bundle"
    return None


def write_marker(folder: Path, kind: str) -> None:
    (folder / MARKER).write_text(json.dumps({"kind": kind, "by": "whisper-edge"}) + "\n", encoding="utf-8")


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_output(target: str | os.PathLike, kind: str, *, overwrite: bool = False,
                 inputs: Iterable[str | os.PathLike] = (), resume: bool = False) -> bool:
    """Raise OutputError unless ``target`` may be written as a ``kind``; True if it already holds one.

    ``resume``: an existing output of the same kind is continued in place (no ``overwrite`` needed).
    """
    target = Path(target)
    real = target.resolve()
    for src in inputs:
        if src is None:
            continue
        src_real = Path(src).resolve()
        if _within(src_real, real):
            raise OutputError(f"output {target} contains the input {src}: writing it would destroy the input; "
                              "choose an output folder outside it")
        if _within(real, src_real):
            raise OutputError(f"output {target} lies inside the input {src}; choose an output folder outside it")
    if not target.exists():
        return False
    if not target.is_dir():
        raise OutputError(f"output {target} exists and is a file, not a folder; choose another path")
    entries = [p.name for p in target.iterdir() if p.name != LOCK]  # a lock alone: a writer died before its marker
    if not entries:
        return False
    found = output_kind(target)
    if found == kind:
        if overwrite or resume:
            return True
        raise OutputError(f"{target} already holds a {kind} made by whisper-edge; pass --overwrite to replace it, "
                          "or choose another folder")
    what = f"a whisper-edge {found}" if found else "files whisper-edge did not make (" + ", ".join(sorted(entries)[:4]) + \
        (", …" if len(entries) > 4 else "") + ")"
    raise OutputError(f"{target} is not empty: it holds {what}; nothing was changed. Choose a new or empty folder "
                      f"for the {kind}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_stale(target: str | os.PathLike) -> None:
    """Remove the temporary folders and files a killed run left beside ``target`` (``.NAME.tmp-PID-…``)."""
    target = Path(target)
    if not target.parent.is_dir():
        return
    for p in target.parent.glob(f".{target.name}.*-*"):
        kind, _, rest = p.name[len(target.name) + 2:].partition("-")
        if kind not in ("tmp", "old"):
            continue
        pid = rest.split("-", 1)[0]
        if pid.isdigit() and _pid_alive(int(pid)) and int(pid) != os.getpid():
            continue  # a run in progress
        if kind == "old" and not target.exists():
            log.warning("restoring %s from %s (a run was killed while replacing it)", target, p)
            os.replace(p, target)
            continue
        log.warning("removing %s, left by a killed run", p)
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                p.unlink()


def claim_folder(target: str | os.PathLike, kind: str, *, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Make ``target`` a ``kind`` folder that whisper-edge fills in place (a run, a corpus, an experiment).

    An existing folder of the same kind is continued (runs resume); a foreign non-empty one is refused, and so is
    one that another process is writing (``lock_folder``).
    """
    target = Path(target)
    check_output(target, kind, inputs=inputs, resume=True)
    try:
        target.mkdir(parents=True, exist_ok=True)
        lock_folder(target, kind)
        if output_kind(target) != kind:
            write_marker(target, kind)
    except OutputError:  # another process writes it: the message says so
        raise
    except OSError as exc:
        raise OSError(f"cannot write to {target}: {exc.strerror or exc}; choose a writable folder") from None
    return target


def lock_folder(folder: Path, kind: str) -> None:
    """Hold an exclusive lock on ``folder`` (which exists) for the rest of this process; OutputError if another
    process holds it. The operating system releases it when the process ends, killed or not, so a run that died
    leaves nothing to clean up. Where there is no ``fcntl`` (Windows) nothing is locked."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        return
    key, path = folder.resolve(), folder / LOCK
    fd = _held.get(key)
    if fd is not None:
        with contextlib.suppress(OSError):
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return  # this process holds it already
        os.close(fd)  # the folder was removed and made again: lock the new one
        del _held[key]
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
        os.close(fd)
        if exc.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
            raise
        raise OutputError(f"{folder} is being written by another whisper-edge process (pid {holder}): two writers "
                          f"would mix their files. Wait for it to finish (it resumes from where it stops if you "
                          f"stop it), or give this {kind} another folder") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _held[key] = fd


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike, *, kind: str, overwrite: bool = False,
               inputs: Iterable[str | os.PathLike] = ()) -> Iterator[Path]:
    """Yield a temporary folder beside ``target``; on success it becomes ``target`` in one rename.

    ``target`` must be new, empty, or (with ``overwrite``) a ``kind`` that whisper-edge made; anything else
    raises OutputError before any work is done. On an exception the temporary folder is removed and
    ``target`` is left as it was.
    """
    target = Path(target)
    check_output(target, kind, overwrite=overwrite, inputs=inputs)
    clean_stale(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-{os.getpid()}-", dir=target.parent))
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; the result is an ordinary shared folder
    except OSError as exc:
        raise OSError(f"cannot write to {target.parent}: {exc.strerror or exc}; choose a writable folder") from None
    try:
        yield tmp
        write_marker(tmp, kind)
        check_output(target, kind, overwrite=overwrite)  # the target may have changed while we worked
        if target.exists():
            old = target.with_name(f".{target.name}.old-{os.getpid()}")
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            try:
                os.replace(tmp, target)
            except OSError as exc:  # another process wrote target between the check above and this rename
                if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST):
                    raise
                raise OutputError(f"{target} was written by another process while this one worked; nothing of it "
                                  "was changed") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-{os.getpid()}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644 & ~_umask())  # mkstemp makes 0600; the result is an ordinary file
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
