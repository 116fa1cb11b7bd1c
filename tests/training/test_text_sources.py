"""``whisper-edge data text``: readable Hindi sentences from installable text (folders, .deb, zip), bad input named."""

import io
import tarfile
import zipfile

import pytest

from whisper_edge.cli import main
from whisper_edge.training.corpus.sources import extract_sentences, split_sentences
from whisper_edge.training.corpus.text import build_sentences

PAGE = """<html><head><title>Menu</title></head><body>
<h1>दस्तावेज़ सहेजना</h1>
<p>दस्तावेज़ में जहाँ आप नोट को रखना चाहते हैं वहाँ क्लिक करें. फ़ाइल मेन्यू खोलता है और पिछली फ़ाइल दिखाता है.</p>
<p>Click <emph>Save</emph> to save the file.</p>
<p>यदि क़िस्म == 1: शून्य बाइट के साथ स्ट्रिंग</p>
<li>इस सूची में 3 विकल्प दिखाई देते हैं।</li>
<p>दस्तावेज़ में जहाँ आप नोट को रखना चाहते हैं वहाँ क्लिक करें.</p>
</body></html>"""


def _deb(path, files: dict[str, bytes]):
    """A minimal Debian package: an ar archive with debian-binary and a data.tar.xz of ``files``."""
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w:xz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    members = [("debian-binary", b"2.0\n"), ("data.tar.xz", tar_bytes.getvalue())]
    out = b"!<arch>\n"
    for name, data in members:
        out += f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data + (b"\n" if len(data) % 2 else b"")
    path.write_bytes(out)
    return path


def test_split_keeps_readable_hindi_sentences_only():
    got = list(split_sentences("फ़ाइल मेन्यू खोलता है और पिछली फ़ाइल दिखाता है. Save the file. यह ठीक है"))
    assert got[0] == ("फ़ाइल मेन्यू खोलता है और पिछली फ़ाइल दिखाता है।", None)  # the full stop written as a danda
    assert got[1] == (None, "latin") and got[2] == (None, "words")  # three words: too short to teach anything
    sentence, why = next(split_sentences("इस सूची में 3 विकल्प दिखाई देते हैं।"))
    assert why is None and "3" not in sentence and "तीन" in sentence  # digits spelled out, as the voices read them


def test_extracts_from_a_debian_package_a_zip_and_a_folder(tmp_path):
    deb = _deb(tmp_path / "help-hi.deb", {"./usr/share/help/hi/a.html": PAGE.encode()})
    with zipfile.ZipFile(tmp_path / "l10n.xpi", "w") as z:
        z.writestr("locale/hi/menu.ftl", "menu-open = नई फ़ाइल खोलने के लिए यहाँ क्लिक करें\n# a comment\n")
    folder = tmp_path / "po"
    folder.mkdir()
    (folder / "app.po").write_text('msgid "Quit"\nmsgstr ""\n"प्रोग्राम बंद करने से पहले "\n"अपना काम सहेज लें"\n', encoding="utf-8")
    got = extract_sentences([deb, tmp_path / "l10n.xpi", folder])
    assert got.sentences == ["दस्तावेज़ में जहाँ आप नोट को रखना चाहते हैं वहाँ क्लिक करें।",
                             "फ़ाइल मेन्यू खोलता है और पिछली फ़ाइल दिखाता है।", "इस सूची में तीन विकल्प दिखाई देते हैं।",
                             "नई फ़ाइल खोलने के लिए यहाँ क्लिक करें", "प्रोग्राम बंद करने से पहले अपना काम सहेज लें"]
    assert got.dropped["duplicate"] == 1 and got.dropped["latin"] >= 1 and got.dropped["symbols"] == 1
    assert not got.unreadable


def test_bad_sources_are_named_and_the_rest_used(tmp_path, capsys):
    (tmp_path / "broken.deb").write_bytes(b"not an archive")
    (tmp_path / "page.html").write_text(PAGE, encoding="utf-8")
    out = tmp_path / "text.txt"
    assert main(["data", "text", "--from", str(tmp_path / "broken.deb"), str(tmp_path / "page.html"), "--out", str(out)]) == 0
    assert "broken.deb: not a Debian package" in capsys.readouterr().out
    lines = out.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# 3 sentences") and len(lines) == 5
    assert main(["data", "text", "--from", str(tmp_path / "page.html"), "--out", str(out)]) == 2  # never overwritten unasked
    assert "exists: pass --overwrite" in capsys.readouterr().err
    assert main(["data", "text", "--from", str(tmp_path / "missing"), "--out", str(tmp_path / "t2.txt")]) == 2
    assert "missing: no such file or folder" in capsys.readouterr().err
    pool = build_sentences(20, seed=0, extra_text=out)  # the comment lines are not sentences
    assert pool.sources[f"user:{out.name}"] == 3 and not any(k.startswith("user:") for k in pool.dropped)


def test_nothing_readable_is_an_error_that_says_what_to_give(tmp_path, capsys):
    (tmp_path / "en.html").write_text("<p>Only English text here, nothing to read.</p>", encoding="utf-8")
    assert main(["data", "text", "--from", str(tmp_path / "en.html"), "--out", str(tmp_path / "t.txt")]) == 2
    assert "no readable Hindi sentence" in capsys.readouterr().err and not (tmp_path / "t.txt").exists()
