"""Reading saved news pages (.html/.htm): the article's own text and what the page says about it.

trafilatura (the common choice for news; not compared with other extractors here, only checked on the
realistic pages of tests/pages/) keeps the article's paragraphs and drops navigation, related-article
lists, cookie banners, comments, ads and scripts; its metadata gives the title, the publication date
(htmldate: the page's own ``article:published_time``, JSON-LD, the URL, the dateline), the publisher and
the canonical URL. The stored text is the extracted text, so every offset points into what was
indexed, as for any document.

The bytes are decoded as the page says (a byte order mark, else ``<meta charset>`` or its http-equiv
form; "latin-1" and "us-ascii" mean windows-1252, as in browsers), else as UTF-8, else as the encoding
charset_normalizer finds. A page that holds no article text (a section front, an error page) is refused
with a reason, as an empty or undecodable one is.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

from index.documents import BOM, Document, InputError, id_from_file_name, make_document

HTML_SUFFIXES = (".html", ".htm")
MIN_ARTICLE_CHARS = 80  # less than this is a caption or a cookie notice, not an article's text
_PRESCAN_BYTES = 4096  # where a page must declare its charset (the HTML standard says 1024; be lenient)
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)
# Labels browsers read as windows-1252 (WHATWG Encoding): a page "in latin-1" uses its 0x80-0x9F letters.
_WINDOWS_1252 = {"iso-8859-1", "iso8859-1", "latin-1", "latin1", "l1", "us-ascii", "ascii", "cp1252", "x-cp1252"}


def decode_page(raw: bytes, where: str) -> str:
    """The page's characters, decoded as it declares (see the module's docstring)."""
    for bom, encoding in ((BOM, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16")):
        if raw.startswith(bom):
            try:
                return raw.decode(encoding).removeprefix("\ufeff")
            except UnicodeDecodeError as exc:
                raise InputError(f"{where}: not valid {encoding} (byte {exc.start})") from None
    declared = _META_CHARSET.search(raw[:_PRESCAN_BYTES])
    if declared:
        label = declared.group(1).decode("ascii").lower()
        encoding = "windows-1252" if label in _WINDOWS_1252 else label
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise InputError(f"{where}: the page declares an unknown character set {label!r}") from None
        try:
            return raw.decode(encoding)
        except UnicodeDecodeError:
            pass  # a wrong declaration is common: try what the bytes are
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        from charset_normalizer import from_bytes

        guess = from_bytes(raw).best()
        if guess is None:
            raise InputError(f"{where}: not text in any known character set (byte {exc.start})") from None
        return str(guess)


def page_document(page: str, doc_id: str, where: str, title: str | None = None, date: str | None = None,
                  source: str | None = None, url: str | None = None) -> Document:
    """The article of one page, as a document with the title, date, publisher and URL the page gives
    (those passed in win: a JSONL row's or an API caller's own metadata)."""
    import trafilatura

    if not page.strip():
        raise InputError(f"{where}: the page is empty")
    if "\x00" in page:
        raise InputError(f"{where}: looks like a binary file (contains NUL bytes)")
    # as_dict=False: a trafilatura Document (its type hint also allows the dict of as_dict=True)
    extracted: trafilatura.settings.Document | None = trafilatura.bare_extraction(  # type: ignore[assignment]
        page, with_metadata=True, as_dict=False, include_comments=False, include_tables=False, include_images=False,
        favor_precision=True, deduplicate=False,
        date_extraction_params={"original_date": True, "extensive_search": False})
    text = (extracted.text or "").strip() if extracted is not None else ""
    if len(text) < MIN_ARTICLE_CHARS:
        raise InputError(f"{where}: no article text found in this page (is it a news article? "
                         f"{len(text)} characters of main text)")
    assert extracted is not None
    return make_document(doc_id, text, title or extracted.title or None, date or extracted.date or None,
                         source or extracted.sitename or extracted.hostname or None, url or extracted.url or None,
                         where=where, infer_date=True)


def read_html_file(path: Path, doc_id: str | None = None) -> Document:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    return page_document(decode_page(raw, str(path)), doc_id or id_from_file_name(path.stem), str(path))
