"""Natural Hindi sentences from text a machine can install: ``whisper-edge data text``.

The corpus's own text is 139 handwritten sentences and templates (training/corpus/text.py). Debian ships Hindi
translations of whole manuals — ``libreoffice-help-hi`` holds about 2,500 help pages (MPL-2.0) whose sentences mix
Hindi with English words written in Devanagari ("कॉन्टेक्स्ट मेन्यू खोलता है"), the code-mixed speech real users
produce. This module reads such sources and keeps the sentences a voice can read and a transcript can match:

* sources: a folder, a Debian package file (``apt-get download libreoffice-help-hi``; read directly, nothing is
  installed), a zip/xpi/jar, or a single file; inside them HTML/XHP/XML pages (paragraphs, headings, list items,
  table cells), gettext ``.po`` files (msgstr) and Fluent/Java ``.ftl``/``.properties`` files (values);
* sentences: split at ``।`` ``.`` ``?`` ``!``; kept when written in Devanagari (no Latin letters, no code symbols)
  with 4–24 words; digits spelled out, trailing ``.`` written as ``।``, duplicates (after the WER normalizer) dropped.

A source that cannot be read is reported by name with the reason and the rest are used; the licence of what you
extract is the source's (the written file says where each came from).
"""

from __future__ import annotations

import html
import io
import re
import tarfile
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ...runtime.normalize import normalize
from .text import _LATIN, clean_line

__all__ = ["Extracted", "extract_sentences", "split_sentences", "MIN_WORDS", "MAX_WORDS"]

MIN_WORDS, MAX_WORDS = 4, 24
PAGES = {".html", ".htm", ".xhp", ".xhtml", ".xml"}
KEY_VALUE = {".ftl", ".properties"}
ARCHIVES = {".zip", ".xpi", ".jar"}
_BLOCK = re.compile(r"<(p|h[1-6]|li|td|title|paragraph)\b[^>]*>(.*?)</\1>", re.S | re.I)
_TAG = re.compile(r"<[^>]+>")
_SPLIT = re.compile(r"(?<=[।?!])\s+|(?<=\.)\s+")
_CODE = re.compile(r"[=<>{}\[\]_/\\|@#$%^&*~`+;:\"“”()]")


@dataclass
class Extracted:
    sentences: list[str] = field(default_factory=list)
    sources: Counter = field(default_factory=Counter)  # files that gave sentences, by source
    dropped: Counter = field(default_factory=Counter)  # reason → count
    unreadable: list[str] = field(default_factory=list)  # "name: why"


def split_sentences(text: str) -> Iterator[tuple[str | None, str | None]]:
    """(sentence, None) for each sentence of ``text`` a voice can read, else (None, why it was dropped)."""
    for part in _SPLIT.split(" ".join(html.unescape(text).split())):
        part = part.strip()
        if not part:
            continue
        if _LATIN.search(part):
            yield None, "latin"
        elif _CODE.search(part):
            yield None, "symbols"
        elif not MIN_WORDS <= len(part.split()) <= MAX_WORDS:
            yield None, "words"
        else:
            part = part[:-1].rstrip() + "।" if part.endswith(".") else part
            sentence, why = clean_line(part)
            yield sentence, why


def _texts(name: str, data: bytes) -> Iterator[str]:
    suffix = Path(name).suffix.lower()
    if suffix in PAGES:
        for _, block in _BLOCK.findall(data.decode("utf-8", errors="replace")):
            yield _TAG.sub(" ", block)
    elif suffix == ".po":
        for m in re.finditer(r'^msgstr\s+((?:"(?:[^"\\]|\\.)*"\s*)+)', data.decode("utf-8", errors="replace"), re.M):
            yield "".join(re.findall(r'"((?:[^"\\]|\\.)*)"', m.group(1))).replace("\\n", " ")
    elif suffix in KEY_VALUE:
        for line in data.decode("utf-8", errors="replace").splitlines():
            if "=" in line and not line.lstrip().startswith("#"):
                yield line.split("=", 1)[1]
    elif suffix in ARCHIVES:
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            for info in z.infolist():
                if not info.is_dir():
                    yield from _texts(info.filename, z.read(info))


def _deb_members(data: bytes) -> Iterator[tuple[str, bytes]]:
    """The files of a Debian package: an ar archive whose data.tar.* holds the file tree."""
    if not data.startswith(b"!<arch>\n"):
        raise ValueError("not a Debian package (no ar header)")
    pos = 8
    while pos + 60 <= len(data):
        head = data[pos:pos + 60]
        name, size = head[:16].decode().strip().rstrip("/"), int(head[48:58].decode().strip())
        body = data[pos + 60:pos + 60 + size]
        pos += 60 + size + (size % 2)
        if name.startswith("data.tar"):
            if name.endswith(".zst"):
                raise ValueError("data.tar.zst: unpack it with 'dpkg-deb -x PACKAGE.deb FOLDER' and pass the folder")
            with tarfile.open(fileobj=io.BytesIO(body)) as tar:
                for m in tar:
                    if m.isfile():
                        yield m.name, tar.extractfile(m).read()
            return
    raise ValueError("no data.tar member")


def _files(path: Path) -> Iterator[tuple[str, bytes]]:
    if path.is_dir():
        for p in sorted(path.rglob("*")):
            if p.is_file() and p.suffix.lower() in PAGES | KEY_VALUE | ARCHIVES | {".po"}:
                yield str(p), p.read_bytes()
    elif path.suffix.lower() == ".deb":
        yield from _deb_members(path.read_bytes())
    else:
        yield str(path), path.read_bytes()


def extract_sentences(paths: list[Path], limit: int | None = None) -> Extracted:
    """Unique readable Hindi sentences from ``paths``, in the order found (at most ``limit``)."""
    out, seen = Extracted(), set()
    for path in map(Path, paths):
        if not path.exists():
            raise ValueError(f"{path}: no such file or folder (a folder, a .deb from 'apt-get download', a zip or a page)")
        try:
            files = list(_files(path))
        except (OSError, ValueError, tarfile.TarError, zipfile.BadZipFile) as exc:
            out.unreadable.append(f"{path}: {exc}")
            continue
        for name, data in files:
            try:
                texts = list(_texts(name, data))
            except (ValueError, zipfile.BadZipFile) as exc:
                out.unreadable.append(f"{name}: {exc}")
                continue
            gave = False
            for text in texts:
                for sentence, why in split_sentences(text):
                    if why:
                        out.dropped[why] += 1
                    elif (key := normalize(sentence)) in seen:
                        out.dropped["duplicate"] += 1
                    elif limit is None or len(out.sentences) < limit:
                        seen.add(key)
                        out.sentences.append(sentence)
                        gave = True
            out.sources[path.name] += gave
    return out
