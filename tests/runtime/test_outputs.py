"""A command never deletes a folder it did not make (issue 12): every refusal here used to be a silent rmtree."""

from __future__ import annotations

import os
import shutil

import pytest

from whisper_edge.cli import main
from whisper_edge.runtime.fsutil import MARKER, OutputError, atomic_dir, check_output, clean_stale, output_kind


def _user_folder(path):
    path.mkdir(parents=True)
    (path / "recording.wav").write_bytes(b"precious")
    return path


def test_atomic_dir_refuses_a_foreign_folder_and_keeps_it(tmp_path):
    dest = _user_folder(tmp_path / "mine")
    with pytest.raises(OutputError, match="did not make.*recording.wav"):
        with atomic_dir(dest, kind="bundle", overwrite=True):
            pytest.fail("no work may start on a refused output")
    assert (dest / "recording.wav").read_bytes() == b"precious"


def test_own_output_is_replaced_only_with_overwrite(tmp_path):
    dest = tmp_path / "b"
    with atomic_dir(dest, kind="bundle") as tmp:
        (tmp / "a").write_text("1")
    assert output_kind(dest) == "bundle" and (dest / MARKER).is_file()
    with pytest.raises(OutputError, match="--overwrite"):
        with atomic_dir(dest, kind="bundle"):
            pass
    with pytest.raises(OutputError, match="whisper-edge checkpoint|holds a whisper-edge bundle"):
        check_output(dest, "checkpoint", overwrite=True)  # another kind of ours is not replaced either
    with atomic_dir(dest, kind="bundle", overwrite=True) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(p.name for p in dest.iterdir()) == sorted([MARKER, "b"])
    assert [p.name for p in tmp_path.iterdir()] == ["b"]  # no temporary or old copy left


def test_output_containing_or_inside_an_input_is_refused(tmp_path):
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    with pytest.raises(OutputError, match="contains the input"):
        check_output(run, "bundle", inputs=[run / "model"])
    with pytest.raises(OutputError, match="inside the input"):
        check_output(run / "model" / "bundle", "bundle", inputs=[run / "model"])


def test_stale_temporaries_of_a_killed_run_are_removed_live_ones_kept(tmp_path):
    dead = tmp_path / ".b.tmp-999999999-abc"
    dead.mkdir()
    (dead / "encoder.onnx").write_bytes(b"x" * 10)
    live = tmp_path / f".b.tmp-{os.getppid()}-xyz"  # a process that is alive
    live.mkdir()
    other = tmp_path / ".c.tmp-999999999-abc"  # another target's: not ours to judge here
    other.mkdir()
    clean_stale(tmp_path / "b")
    assert not dead.exists() and live.exists() and other.exists()


def test_killed_replacement_is_restored(tmp_path):
    old = tmp_path / ".b.old-999999999"
    old.mkdir()
    (old / "manifest.json").write_text("{}")
    clean_stale(tmp_path / "b")
    assert (tmp_path / "b" / "manifest.json").is_file() and not old.exists()


def test_export_into_the_run_that_holds_the_model_is_refused(tiny_model, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(tiny_model, run / "model")
    assert main(["export", "--model", str(run / "model"), "--out", str(run), "--wer-clips", "0"]) == 2
    assert "contains the input" in capsys.readouterr().err
    assert (run / "model" / "config.json").is_file()


def test_export_over_a_bundle_needs_overwrite(tiny_model, tiny_bundle, tmp_path, capsys):
    out = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, out)
    assert main(["export", "--model", str(tiny_model), "--out", str(out), "--wer-clips", "0"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    user = _user_folder(tmp_path / "user")
    assert main(["export", "--model", str(tiny_model), "--out", str(user), "--wer-clips", "0", "--overwrite"]) == 2
    assert (user / "recording.wav").read_bytes() == b"precious"


def test_unpack_into_the_archives_own_folder_keeps_archive_and_siblings(tiny_bundle, tmp_path, capsys):
    d = tmp_path / "dir"
    d.mkdir()
    assert main(["bundle", "pack", str(tiny_bundle), str(d / "x.tar")]) == 0
    (d / "notes.txt").write_text("mine")
    assert main(["bundle", "unpack", str(d / "x.tar"), str(d)]) == 2
    assert "contains the input" in capsys.readouterr().err
    assert (d / "x.tar").is_file() and (d / "notes.txt").read_text() == "mine"
    assert main(["bundle", "unpack", str(d / "x.tar"), str(tmp_path / "u")]) == 0
    assert main(["bundle", "unpack", str(d / "x.tar"), str(tmp_path / "u")]) == 2  # an existing bundle: say so
    assert main(["bundle", "unpack", str(d / "x.tar"), str(tmp_path / "u"), "--overwrite"]) == 0


def test_data_build_refuses_a_users_audiofolder(audiofolder, tmp_path, capsys):
    user = tmp_path / "recordings"
    shutil.copytree(audiofolder, user)
    before = sorted(p.name for p in user.iterdir())
    assert main(["data", "build", "--out", str(user), "--small", "--utterances", "24", "--engines", "espeak"]) == 2
    assert "nothing was changed" in capsys.readouterr().err
    assert sorted(p.name for p in user.iterdir()) == before


def test_model_import_refuses_a_foreign_folder(cache_dir, tmp_path, capsys):
    user = _user_folder(tmp_path / "m")
    assert main(["model", "import", "--out", str(user), "--overwrite"]) == 2
    assert "did not make" in capsys.readouterr().err
    assert (user / "recording.wav").read_bytes() == b"precious"


def test_damaged_cached_copy_of_an_archive_is_repaired(tiny_bundle, tmp_path):
    from whisper_edge.runtime.bundle import open_bundle, pack_archive, verify_bundle

    archive = pack_archive(tiny_bundle, tmp_path / "t.tar")
    cached = open_bundle(archive, cache=tmp_path / "cache")
    (cached / "tokenizer.json").write_text("damaged")
    again = open_bundle(archive, cache=tmp_path / "cache")
    assert again == cached
    verify_bundle(again)


def test_two_processes_open_one_archive_at_once(tiny_bundle, tmp_path):
    """The cache unpack of an archive is atomic: two processes that open it together both get a whole bundle."""
    import subprocess
    import sys

    from whisper_edge.runtime.bundle import pack_archive

    archive = pack_archive(tiny_bundle, tmp_path / "t.tar")
    code = ("from whisper_edge.runtime.bundle import open_bundle, verify_bundle; "
            f"verify_bundle(open_bundle({str(archive)!r}, cache={str(tmp_path / 'cache')!r}))")
    procs = [subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    # whichever lost the race used the winner's copy; the cache holds one verified bundle
    from whisper_edge.runtime.bundle import open_bundle, verify_bundle

    verify_bundle(open_bundle(archive, cache=tmp_path / "cache"))
