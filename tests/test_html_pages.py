"""Saved news pages (.html/.htm, index/html_pages.py): only the article's text is indexed, with the page's
title, date, publisher and URL; boilerplate is never cited; bad pages are refused with a reason and leave
the index as it was. Real pages of the kinds users keep (tests/pages/): menus, cookie banners, related
and most-read lists, newsletter forms, comments, share buttons, ads; one page in windows-1252 declared as
ISO-8859-1; one with broken markup; one section front that is not an article."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.documents import read_paths
from index.errors import InputError
from index.html_pages import decode_page, page_document, read_html_file
from tests.helpers import http, run_cli

PAGES = Path(__file__).parent / "pages"
ARTICLES = ["banjir-bekasi.html", "gempa-cianjur.html", "harga-beras-rusak.html"]

# Text on the pages that is not the article's: none of it may be indexed, let alone cited.
BOILERPLATE = [
    "cookie", "Setuju", "Beranda", "Olahraga", "Berita Terkait", "Harga Cabai", "Timnas", "Sukabumi", "Komentar",
    "Semoga cepat surut", "drainase", "Hak cipta", "Tentang Kami", "IKLAN", "kartu kredit", "document.write",
    "Langganan newsletter", "Masuk", "Bagikan", "WhatsApp", "Terpopuler", "Kereta Cepat", "Rendang", "Piala Citra",
    "kotak masuk", "Berlangganan", "Turut berduka", "bantuan logistik", "Pedoman Media Siber", "Kebijakan Privasi",
    "Karier", "analytics", "Baca juga", "Harga Telur", "Oleh Rina",
]

EXPECTED = {
    "banjir-bekasi": {"title": "Banjir Rendam Ribuan Rumah di Bekasi", "date": "2024-01-15",
                      "source": "Kabar Harian",
                      "url": "https://kabarharian.example/nasional/2024/01/15/banjir-bekasi",
                      "holds": ["merendam sedikitnya 2.300 rumah", "12 perahu karet", "dapur umum di tiga lokasi"]},
    "gempa-cianjur": {"title": "Gempa Guncang Cianjur, Warga Berhamburan", "date": "2023-11-21",
                      "source": "Warta Nusantara", "url": None,
                      "holds": ["Gempa bermagnitudo 5,6", "kedalaman 11 kilometer",
                                "\u201cGuncangannya keras sekali, lemari di rumah kami roboh,\u201d kata Jos\u00e9",
                                "CIANJUR, WARTA NUSANTARA \u2013 Gempa"]},
    "harga-beras-rusak": {"title": "Harga Beras Naik Lagi di Pasar Induk Cipinang", "date": None, "source": None,
                          "url": None, "holds": ["Rp 13.500 per kilogram", "operasi pasar di 50 titik"]},
}


@pytest.mark.parametrize("name", ARTICLES)
def test_a_page_gives_only_its_article_text_and_metadata(name: str) -> None:
    doc = read_html_file(PAGES / name)
    expected = EXPECTED[doc.doc_id]
    assert (doc.title, doc.date, doc.source, doc.url) == (expected["title"], expected["date"], expected["source"],
                                                          expected["url"])
    for sentence in expected["holds"]:
        assert sentence in doc.text
    for bit in BOILERPLATE:
        assert bit not in doc.text, (name, bit)


def test_a_page_in_windows_1252_is_read_as_declared() -> None:
    """gempa-cianjur.html says ISO-8859-1 and holds windows-1252's curly quotes and dash (0x93, 0x94, 0x96):
    browsers read such a page as windows-1252, and so does Tanya. Without the declaration the bytes would
    not be UTF-8; with a declaration that is wrong for the bytes, UTF-8 is tried."""
    raw = (PAGES / "gempa-cianjur.html").read_bytes()
    assert b"\x93" in raw and b"\xe9" in raw
    text = decode_page(raw, "page")
    assert "\u201cGuncangannya" in text and "Jos\u00e9" in text and "\u2013" in text
    utf8_declared_wrongly = "<meta charset='iso-8859-1'><p>Jos\u00e9 \u201ckata\u201d</p>".encode()
    assert decode_page(utf8_declared_wrongly, "page").endswith("Jos\u00e9 \u201ckata\u201d</p>")
    assert decode_page(b"\xef\xbb\xbf<p>ok</p>", "page") == "<p>ok</p>"


@pytest.mark.parametrize(("content", "reason"), [
    (b"", "the page is empty"),
    (b"  \n\t ", "the page is empty"),
    (None, "no article text found"),  # the section front in tests/pages
    (b"<html><body><p>Menu</p></body></html>", "no article text found"),
    (b"<meta charset='klingon-8'><p>" + b"kata " * 40, "unknown character set 'klingon-8'"),
    (b"<p>\x00\x01binary" + b"x" * 200, "binary"),
])
def test_a_bad_page_is_refused_with_a_reason(tmp_path: Path, content: bytes | None, reason: str) -> None:
    path = PAGES / "indeks-berita.html" if content is None else tmp_path / "halaman.html"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=reason):
        read_paths([path])


def test_a_folder_reads_pages_beside_text_files(tmp_path: Path) -> None:
    for name in ARTICLES:
        (tmp_path / name).write_bytes((PAGES / name).read_bytes())
    (tmp_path / "catatan.txt").write_text("Catatan redaksi tentang banjir dan gempa bulan ini.", encoding="utf-8")
    assert sorted(d.doc_id for d in read_paths([tmp_path])) == sorted(
        ["banjir-bekasi", "gempa-cianjur", "harga-beras-rusak", "catatan"])


def listed(home: Path) -> list[dict]:
    return [json.loads(line) for line in run_cli("docs", "--json", home=home).stdout.splitlines()]


def test_tanya_index_reads_pages_and_no_boilerplate_is_ever_cited(home: Path) -> None:
    """The real CLI indexes the pages; questions aimed at the articles and at their boilerplate (comments,
    related lists, banners, forms) cite only article sentences, exactly; a bad page is refused in one line
    and leaves the index as it was."""
    from rag.tanya import Tanya

    indexed = run_cli("index", *(str(PAGES / n) for n in ARTICLES), home=home)
    assert indexed.returncode == 0, indexed.stderr
    shown = listed(home)
    assert {d["doc_id"]: (d["title"], d["date"], d["source"], d["url"]) for d in shown} == {
        k: (v["title"], v["date"], v["source"], v["url"]) for k, v in EXPECTED.items()}
    first = json.loads(run_cli("ask", "--json", "-", home=home,
                               stdin="Berapa rumah yang terendam banjir di Bekasi?").stdout)
    # (The headline, "Banjir Rendam Ribuan Rumah di Bekasi", may come first: "ribuan" answers "berapa" too.)
    assert first["citations"][0]["doc_id"] == "banjir-bekasi"
    assert {(c["date"], c["source"], c["url"]) for c in first["citations"]} == {
        ("2024-01-15", "Kabar Harian", "https://kabarharian.example/nasional/2024/01/15/banjir-bekasi")}
    assert any("2.300 rumah" in c["sentence"] for c in first["citations"]), first
    refused = run_cli("index", str(PAGES / "indeks-berita.html"), home=home)
    assert refused.returncode != 0 and "no article text found" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert listed(home) == shown

    questions = ["Berapa kedalaman gempa Cianjur?", "Berapa harga beras medium di Cipinang?",
                 "Apa kata pembaca di komentar?", "Apa berita terkait tentang harga cabai?",
                 "Apakah situs ini menggunakan cookie?", "Bagaimana cara berlangganan newsletter?",
                 "Apa resep rendang Padang yang empuk?", "Siapa yang menang, Timnas atau Vietnam?",
                 "Who won the match against Vietnam?", "What did José Rahardjo say?",
                 "Di mana kebijakan privasi dan pedoman media siber?", "Kapan jadwal kereta cepat berubah?"]
    tanya = Tanya.open(home)
    try:
        for question in questions:
            answer = tanya.ask(question)
            for c in answer.citations:
                assert tanya.document(c.doc_id).text[c.start:c.end] == c.sentence
                assert not [bit for bit in BOILERPLATE if bit in c.sentence], (question, c.sentence)
    finally:
        tanya.close()


def test_the_http_api_takes_a_page_as_html(seed_server: str) -> None:
    page = (PAGES / "banjir-bekasi.html").read_text(encoding="utf-8")
    status, body = http("POST", f"{seed_server}/api/documents", {"documents": [{"id": "banjir", "html": page}]})
    assert status == 200 and body["added"] == ["banjir"], body
    status, doc = http("GET", f"{seed_server}/api/documents/banjir")
    expected = EXPECTED["banjir-bekasi"]
    assert (doc["title"], doc["date"], doc["source"], doc["url"]) == (
        expected["title"], expected["date"], expected["source"], expected["url"])
    assert doc["text"] == page_document(page, "banjir", "page").text and doc["date_inferred"] is False
    status, body = http("POST", f"{seed_server}/api/documents",
                        {"documents": [{"id": "bertanggal", "text": "Teks berita.", "date": "14 Maret 2016"}]})
    assert status == 200, body
    dated = http("GET", f"{seed_server}/api/documents/bertanggal")[1]
    assert (dated["date"], dated["date_inferred"]) == ("2016-03-14", False)
    status, body = http("POST", f"{seed_server}/api/documents",
                        {"documents": [{"id": "x", "text": "Teks.", "date": "kemarin sore"}]})
    assert status == 400 and "is not a date" in body["detail"], body
    assert http("DELETE", f"{seed_server}/api/documents/bertanggal")[0] == 200
    status, body = http("POST", f"{seed_server}/api/documents",
                        {"documents": [{"id": "dua", "html": page, "text": "teks"}]})
    assert status == 400 and "either 'text' or 'html'" in body["detail"], body
    status, body = http("POST", f"{seed_server}/api/documents",
                        {"documents": [{"id": "depan", "html": (PAGES / "indeks-berita.html").read_text()}]})
    assert status == 400 and "no article text found" in body["detail"], body
    assert http("DELETE", f"{seed_server}/api/documents/banjir")[0] == 200


def test_a_pages_url_is_part_of_its_content_hash() -> None:
    """The content hash names a document's vectors (index/store.py ``version_of``): the same text saved
    from another address is another version, and a document without a URL keeps its hash."""
    from index.documents import Document

    plain = Document("lama", "Teks lama.", "Lama", "2016-03-14", "Kompas")
    assert Document("lama", "Teks lama.", "Lama", "2016-03-14", "Kompas", None).content_hash == plain.content_hash
    assert Document("lama", "Teks lama.", "Lama", "2016-03-14", "Kompas", "https://x.example/a").content_hash \
        != plain.content_hash
