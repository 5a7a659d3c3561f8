"""Reading user input into documents: folders of .txt/.md/.html files, .jsonl files and saved news
pages (.html/.htm, index/html_pages.py).

Every problem becomes an ``InputError`` with a one-line reason naming the file (and line), so the
CLI and the HTTP API can report it without a traceback, before anything in the index is touched.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from index.dates import inferred_date, iso_date
from index.errors import InputError

TEXT_SUFFIXES = (".txt", ".md")
MAX_DOCUMENT_CHARS = 5_000_000
MAX_TITLE_CHARS = 300  # longer titles are cut (a page's <title> can hold a whole teaser)
MAX_URL_CHARS = 2000  # longer URLs are cut
MAX_SOURCE_CHARS = 200  # a publisher's name; a longer one is refused (it is echoed in every citation)
BOM = b"\xef\xbb\xbf"  # UTF-8's byte order mark, which some editors (Notepad) write: not part of the text
_DOC_ID = re.compile(r"[\w.\-]{1,200}")  # whole string (fullmatch: `$` would let a trailing newline in)


@dataclass(frozen=True)
class Document:
    doc_id: str
    text: str
    title: str
    date: str | None = None
    source: str | None = None  # the publisher
    url: str | None = None
    date_inferred: bool = False  # the date was read from the text's dateline (index/dates.py), not given

    @property
    def content_hash(self) -> str:
        # A URL and the inferred flag only when there: documents indexed before they existed keep their hash.
        extra = [*([self.url] if self.url else []), *(["inferred"] if self.date_inferred else [])]
        meta = json.dumps([self.title, self.date, self.source, *extra], ensure_ascii=False)
        return hashlib.sha256((meta + "\0" + self.text).encode("utf-8")).hexdigest()


def validate_doc_id(doc_id: str) -> str:
    # "." and ".." cannot be addressed in a URL (clients collapse /api/documents/.. to /api/).
    if not isinstance(doc_id, str) or not _DOC_ID.fullmatch(doc_id) or not doc_id.strip("."):
        raise InputError(f"invalid document id {doc_id!r}: use 1-200 letters, digits, '.', '_' or '-' "
                         "(not only dots)")
    return doc_id


def make_document(doc_id: str, text: object, title: object = None, date: object = None,
                  source: object = None, url: object = None, where: str = "", infer_date: bool = False) -> Document:
    """A validated document. Its date is the one given, as ISO 8601 (index/dates.py; a value that is not a
    date is refused); with ``infer_date`` and none given, the date in the text's dateline, if any."""
    where = where or doc_id
    validate_doc_id(doc_id)
    if not isinstance(text, str):
        raise InputError(f"{where}: 'text' must be a string")
    if "\x00" in text:
        raise InputError(f"{where}: looks like a binary file (contains NUL bytes)")
    checked_text(text, "text", where)
    if not text.strip():
        raise InputError(f"{where}: the document is empty")
    if len(text) > MAX_DOCUMENT_CHARS:
        raise InputError(f"{where}: the document has {len(text):,} characters; the limit is "
                         f"{MAX_DOCUMENT_CHARS:,}")
    title, date, source, url = (checked_text(value, name, where) for name, value in
                                (("title", title), ("date", date), ("source", source), ("url", url)))
    if source and len(source) > MAX_SOURCE_CHARS:
        raise InputError(f"{where}: 'source' has {len(source):,} characters; a publisher's name is at most "
                         f"{MAX_SOURCE_CHARS}")
    iso = iso_date(date) if date and date.strip() else None
    if date and date.strip() and iso is None:
        raise InputError(f"{where}: 'date' {date[:40]!r} is not a date (use YYYY-MM-DD)")
    inferred = iso is None and infer_date and (iso := inferred_date(text)) is not None
    return Document(doc_id, text, (title or title_from_text(text))[:MAX_TITLE_CHARS], iso,
                    source or None, url[:MAX_URL_CHARS] if url else None, inferred)


def checked_text(value: object, name: str, where: str = "") -> str | None:
    """One rule for every text a user hands in (a document's fields, a filter's values): None, or a string
    that is valid Unicode. A lone surrogate (JSON allows "\\ud800") can be neither stored nor sent back as
    UTF-8, so it is refused here rather than failing later (in a hash, a query, a reply)."""
    if value is None:
        return None
    prefix = f"{where}: " if where else ""
    if not isinstance(value, str):
        raise InputError(f"{prefix}'{name}' must be a string")
    if not is_valid_unicode(value):
        raise InputError(f"{prefix}'{name}' is not valid Unicode (a lone surrogate)")
    return value


def is_valid_unicode(text: str) -> bool:
    """False for a string holding a lone surrogate (JSON and Python allow one; UTF-8 cannot hold it)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def title_from_text(text: str, limit: int = 100) -> str:
    """The first line; when that is a whole paragraph (no headline), its first words and an ellipsis."""
    first_line = text.strip().split("\n", 1)[0].strip()
    if len(first_line) <= limit:
        return first_line
    cut = first_line.rfind(" ", 0, limit)
    return first_line[: cut if cut > limit // 2 else limit].rstrip(" ,;:–-") + "…"


def read_text_file(path: Path, doc_id: str | None = None) -> Document:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    try:
        text = raw.removeprefix(BOM).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    return make_document(doc_id or id_from_file_name(path.stem), text, where=str(path), infer_date=True)


def id_from_file_name(stem: str) -> str:
    """A file's id is its name without the extension, with each run of characters an id cannot hold
    (spaces, slashes, punctuation) turned into one '-': "berita banjir.txt" is "berita-banjir"."""
    return re.sub(r"[^\w.\-]+", "-", stem).strip("-") or stem


def read_jsonl(path: Path) -> Iterator[Document]:
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            where = f"{path}:{number}"
            if not raw.strip():
                continue
            if number == 1:
                raw = raw.removeprefix(BOM)
            try:
                row = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError):
                raise InputError(f"{where}: not a JSON object in UTF-8") from None
            if not isinstance(row, dict) or "id" not in row or "text" not in row:
                raise InputError(f"{where}: each line needs an object with 'id' and 'text'")
            if isinstance(row["id"], bool) or not isinstance(row["id"], str | int):  # null would become "None"
                raise InputError(f"{where}: 'id' must be a string")
            yield make_document(str(row["id"]), row["text"], row.get("title"), row.get("date"),
                                row.get("source"), row.get("url"), where=where)


def read_paths(paths: list[Path]) -> list[Document]:
    """All documents under ``paths``, fully validated before any is indexed (all or nothing)."""
    from index.html_pages import HTML_SUFFIXES, read_html_file  # (it builds on this module)

    def read_file(path: Path) -> Document:
        return read_html_file(path) if path.suffix.lower() in HTML_SUFFIXES else read_text_file(path)

    docs: dict[str, Document] = {}
    origin: dict[str, str] = {}
    for path in paths:
        if not path.exists():
            raise InputError(f"{path}: no such file or folder")
        if path.is_dir():
            files = sorted(p for p in path.rglob("*")
                           if p.suffix.lower() in (*TEXT_SUFFIXES, *HTML_SUFFIXES) and p.is_file())
            found: Iterator[Document] = (read_file(f) for f in files)
        elif path.suffix.lower() == ".jsonl":
            found = read_jsonl(path)
        elif path.suffix.lower() in (*TEXT_SUFFIXES, *HTML_SUFFIXES):
            found = iter([read_file(path)])
        else:
            raise InputError(f"{path}: unsupported file type (use a folder, .txt, .md, .html, .htm or .jsonl)")
        count = len(docs)
        for doc in found:
            if doc.doc_id in docs:
                raise InputError(f"duplicate document id {doc.doc_id!r} ({origin[doc.doc_id]} and {path})")
            docs[doc.doc_id] = doc
            origin[doc.doc_id] = str(path)
        if len(docs) == count:  # most likely a wrong path: say so rather than "0 added"
            what = "no .txt, .md or .html files in this folder" if path.is_dir() else "no documents in this file"
            raise InputError(f"{path}: {what}")
    return list(docs.values())
