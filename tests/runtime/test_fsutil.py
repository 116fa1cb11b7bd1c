"""Atomic writes: the file appears whole, with ordinary permissions, and no temporary file is left."""

import os
from pathlib import Path

import pytest

from whisper_edge.runtime.fsutil import atomic_write_json, atomic_write_text


def test_atomic_write_gives_an_ordinary_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "sub" / "results.md"
    atomic_write_text(path, "first")
    atomic_write_text(path, "second")
    assert path.read_text() == "second"
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o644 & ~mask  # not mkstemp's 0600
    atomic_write_json(tmp_path / "sub" / "r.json", {"a": 1})
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["r.json", "results.md"]


def test_a_target_written_by_another_process_during_the_rename_is_an_output_error(tmp_path, monkeypatch):
    """Two processes unpacking one archive into the cache: the one that loses the last race gets OutputError (which
    open_bundle answers by using the winner's copy), not a bare 'Directory not empty', and the winner's copy stays."""
    from whisper_edge.runtime import fsutil

    target = tmp_path / "out"
    real_replace = os.replace

    def racing_replace(src, dst):
        if Path(dst) == target and not target.exists():  # the other process's rename lands first
            target.mkdir()
            (target / "winner.txt").write_text("theirs")
        return real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", racing_replace)
    with pytest.raises(fsutil.OutputError, match="another process"):
        with fsutil.atomic_dir(target, kind="bundle") as tmp:
            (tmp / "mine.txt").write_text("mine")
    assert (target / "winner.txt").read_text() == "theirs" and not (target / "mine.txt").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["out"]  # the temporary folder is gone



def test_a_folder_another_process_writes_is_refused_until_that_process_ends(tmp_path, hold_folder):
    from whisper_edge.runtime.fsutil import LOCK, OutputError, claim_folder

    run = tmp_path / "run"
    proc = hold_folder(run)
    with pytest.raises(OutputError, match=rf"being written by another whisper-edge process \(pid {proc.pid}\)"):
        claim_folder(run, "run")
    proc.kill()
    proc.wait()
    assert claim_folder(run, "run") == run  # killed: the lock went with it, and the run resumes here
    assert claim_folder(run, "run") == run  # this process holds it already
    assert (run / LOCK).read_text().strip() == str(os.getpid())
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / LOCK).write_text("123\n")  # a writer that died before its marker: not someone's files
    assert claim_folder(fresh, "run") == fresh
