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
from typing import Any

from index.documents import BOM, Document, checked_text, id_from_file_name, make_document
from index.errors import InputError

HTML_SUFFIXES = (".html", ".htm")
MIN_ARTICLE_CHARS = 80  # less than this is a caption or a cookie notice, not an article's text
MAX_LINK_SHARE = 0.5  # a main text mostly of link text is a section front or a list of links
MAX_PAGE_CHARS = 3_000_000  # a news article's saved page is rarely over 1 MB
_PRESCAN_BYTES = 4096  # where a page must declare its charset (the HTML standard says 1024; be lenient)
_META_CHARSET = re.compile(rb"""<meta[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)
# WHATWG labels whose meaning differs from Python's codec of that name (or that Python lacks). Browsers read
# "latin-1" and "us-ascii" as windows-1252: such a page uses its 0x80-0x9F letters.
_WHATWG_ALIASES = {**dict.fromkeys(("iso-8859-1", "iso8859-1", "latin-1", "latin1", "l1", "us-ascii", "ascii",
                                    "x-cp1252"), "cp1252"),
                   "gb2312": "gbk", "x-gbk": "gbk", "tis-620": "cp874", "iso-8859-11": "cp874",
                   "iso-8859-9": "cp1254", "x-mac-cyrillic": "mac-cyrillic", "x-sjis": "shift_jis",
                   "ks_c_5601-1987": "euc-kr", "x-user-defined": "cp1252"}
# The WHATWG Encoding standard's character sets (all ASCII-compatible), by Python's codec names.
_WEB_ENCODINGS = {codecs.lookup(label).name for label in (
    "utf-8", "cp866", "iso-8859-2", "iso-8859-3", "iso-8859-4", "iso-8859-5", "iso-8859-6", "iso-8859-7",
    "iso-8859-8", "iso-8859-10", "iso-8859-13", "iso-8859-14", "iso-8859-15", "iso-8859-16", "koi8-r", "koi8-u",
    "mac-roman", "mac-cyrillic", "cp874", "cp1250", "cp1251", "cp1252", "cp1253", "cp1254", "cp1255", "cp1256",
    "cp1257", "cp1258", "gbk", "gb18030", "big5", "big5hkscs", "euc-jp", "iso-2022-jp", "shift_jis", "euc-kr",
    "utf-8-sig")}


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
        declared_encoding = _declared_encoding(label, where)
        if declared_encoding is not None:
            try:
                return raw.decode(declared_encoding)
            except UnicodeError:
                pass  # a wrong declaration is common: try what the bytes are
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        from charset_normalizer import from_bytes

        guess = from_bytes(raw).best()
        if guess is None:
            raise InputError(f"{where}: not text in any known character set (byte {exc.start})") from None
        return str(guess)


def _declared_encoding(label: str, where: str) -> str | None:
    """The encoding a ``<meta charset>`` label names, as browsers read it (WHATWG Encoding): a label Python
    does not know is refused; a known one that is not a web character set is ignored (Python's bytes-to-
    bytes codecs such as base64, zlib or rot13, "undefined", EBCDIC, utf-7), and utf-16 or utf-32 found by
    reading the page as ASCII means utf-8."""
    try:
        name = codecs.lookup(_WHATWG_ALIASES.get(label, label)).name
    except LookupError:
        raise InputError(f"{where}: the page declares an unknown character set {label!r}") from None
    if name.startswith(("utf-16", "utf-32")):
        return "utf-8"
    return name if name in _WEB_ENCODINGS else None


def page_document(page: str, doc_id: str, where: str, title: str | None = None, date: str | None = None,
                  source: str | None = None, url: str | None = None) -> Document:
    """The article of one page, as a document with the title, date, publisher and URL the page gives
    (those passed in win: a JSONL row's or an API caller's own metadata)."""
    import trafilatura

    if not page.strip():
        raise InputError(f"{where}: the page is empty")
    if len(page) > MAX_PAGE_CHARS:  # before extraction, which takes ~2.5 s per million characters
        raise InputError(f"{where}: the page has {len(page):,} characters; the limit for a saved page is "
                         f"{MAX_PAGE_CHARS:,}")
    if "\x00" in page:
        raise InputError(f"{where}: looks like a binary file (contains NUL bytes)")
    checked_text(page, "html", where)
    # as_dict=False: a trafilatura Document (its type hint also allows the dict of as_dict=True).
    # include_links: to see how much of the main text is link text (the stored text is without them).
    extracted: trafilatura.settings.Document | None = trafilatura.bare_extraction(  # type: ignore[assignment]
        page, with_metadata=True, as_dict=False, include_comments=False, include_tables=False, include_images=False,
        include_links=True, favor_precision=True, deduplicate=False,
        date_extraction_params={"original_date": True, "extensive_search": False})
    text, linked = main_text(extracted.body if extracted is not None else None)
    letters = sum(c.isalpha() for c in text)
    if len(text) < MIN_ARTICLE_CHARS or letters - linked < MIN_ARTICLE_CHARS or linked > letters * MAX_LINK_SHARE:
        raise InputError(f"{where}: no article text found in this page (is it a news article? {len(text)} "
                         f"characters of main text, {linked / max(letters, 1):.0%} of its letters in links)")
    assert extracted is not None
    return make_document(doc_id, text, title or extracted.title or None, date or extracted.date or None,
                         source or extracted.sitename or extracted.hostname or None, url or extracted.url or None,
                         where=where, infer_date=True)


def main_text(body: Any) -> tuple[str, int]:
    """trafilatura's text of its extracted XML body without the link markup, and how many of its letters
    are link text (navigation, "related articles", tag clouds: what a page of only links is made of)."""
    if body is None:
        return "", 0
    from lxml import etree
    from trafilatura.xml import xmltotxt

    linked = sum(c.isalpha() for ref in body.iter("ref") for c in "".join(ref.itertext()))
    etree.strip_tags(body, "ref")
    return xmltotxt(body, False).strip(), linked


def read_html_file(path: Path, doc_id: str | None = None) -> Document:
    try:
        size = path.stat().st_size
        if size > 4 * MAX_PAGE_CHARS:  # more characters than the limit whatever the encoding: do not read it
            raise InputError(f"{path}: the page has {size:,} bytes; the limit for a saved page is "
                             f"{MAX_PAGE_CHARS:,} characters")
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from None
    return page_document(decode_page(raw, str(path)), doc_id or id_from_file_name(path.stem), str(path))
