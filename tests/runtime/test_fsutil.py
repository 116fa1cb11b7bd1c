"""Atomic writes: the file appears whole, with ordinary permissions, and no temporary file is left."""

import os

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
