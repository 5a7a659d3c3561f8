"""Indexing through the Python API against real Chroma (embedded) and the real model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from index.documents import make_document, read_paths
from index.errors import InputError
from index.index import Index
from index.sentences import split_sentences
from rag.tanya import Tanya
from tests.helpers import CORPUS, KIRBY_DOC, THOMAS_DOC, run_cli


def assert_consistent(index: Index) -> None:
    """Documents, sentence offsets and vectors, Chroma and BM25 all agree, with nothing left over."""
    report = index.check()
    assert report.problems == [] and report.leftovers == 0 and report.pending == 0
    _, sentences, chunks = index.store.counts()
    assert index.vectors.chunk_collection.count() == chunks == report.vectors and sentences > 0
    assert len(index.bm25) == chunks
    stored = {d.doc_id for d in index.store.documents()}
    assert {doc_id for doc_id, _ in index.vectors.versions().values()} == stored
    for doc_id in stored:  # the stored offsets are the splitter's, in order, each a sentence of the text
        text = index.store.text(doc_id)
        spans = split_sentences(text)
        assert [(s.start, s.end) for s in index.store.sentences(doc_id)] == [(s.start, s.end) for s in spans]
        assert all(text[s.start : s.end] == s.text and s.text.strip() == s.text != "" for s in spans)


def test_index_the_seed_corpus_then_reindex_without_duplicates(home: Path) -> None:
    tanya = Tanya.open(home)
    first = tanya.add_paths([CORPUS])
    assert sorted(first.added) == [KIRBY_DOC, THOMAS_DOC] and first.chunks > 0
    counts = tanya.index.store.counts()
    again = tanya.add_paths([CORPUS])
    assert again.added == [] and again.updated == [] and len(again.unchanged) == 2 and again.chunks == 0
    assert tanya.index.store.counts() == counts
    assert_consistent(tanya.index)
    # A fresh process sees the same index.
    tanya.close()
    reopened = Tanya.open(home)
    assert [d.doc_id for d in reopened.documents()] == [KIRBY_DOC, THOMAS_DOC]
    assert_consistent(reopened.index)


def test_changed_document_is_replaced_everywhere(home: Path, tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "berita.txt").write_text("Judul Lama\nPresiden meresmikan jembatan baru di Kupang. "
                                       "Jembatan itu sepanjang 300 meter.", encoding="utf-8")
    tanya = Tanya.open(home)
    tanya.add_paths([folder])
    (folder / "berita.txt").write_text("Judul Baru\nGubernur membuka pasar ikan di Ambon.", encoding="utf-8")
    report = tanya.add_paths([folder])
    assert report.updated == ["berita"]
    assert tanya.document("berita").title == "Judul Baru"
    assert "Kupang" not in " ".join(c.text for c in tanya.retrieve("jembatan Kupang", k=5))
    assert_consistent(tanya.index)


def test_delete_removes_a_document_everywhere(home: Path) -> None:
    tanya = Tanya.open(home)
    tanya.add_paths([CORPUS])
    assert tanya.delete(THOMAS_DOC)
    assert not tanya.delete(THOMAS_DOC)
    assert [d.doc_id for d in tanya.documents()] == [KIRBY_DOC]
    assert all(c.doc_id == KIRBY_DOC for c in tanya.retrieve("Kolonel John J. Thomas Central Command", k=10))
    assert_consistent(tanya.index)


def test_jsonl_input_with_metadata(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "news.jsonl"
    rows = [{"id": "a-1", "title": "Banjir Jakarta", "date": "2020-01-02", "source": "contoh.id",
             "text": "Banjir melanda Jakarta pada 1 Januari 2020. Ribuan warga mengungsi."},
            {"id": "a-2", "text": "Gempa bumi mengguncang Lombok. Tidak ada korban jiwa."}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    tanya = Tanya.open(home)
    tanya.add_paths([path])
    info = {d.doc_id: d for d in tanya.documents()}
    assert info["a-1"].title == "Banjir Jakarta" and info["a-1"].date == "2020-01-02"
    assert info["a-2"].title == "Gempa bumi mengguncang Lombok. Tidak ada korban jiwa."
    answer = tanya.ask("Berapa warga yang mengungsi karena banjir Jakarta?")
    assert answer.abstained or answer.citations[0].doc_id == "a-1"


@pytest.mark.parametrize(("name", "content", "message"), [
    ("kosong.txt", b"   \n", "empty"),
    ("biner.txt", b"\x00\x01\x02binary", "binary"),
    ("latin1.txt", "Caf\u00e9 ol\u00e9".encode("latin-1"), "not UTF-8"),
    ("rusak.jsonl", b'{"id": "x", "text": "baik"}\n{not json\n', "rusak.jsonl:2"),
    ("tanpa-id.jsonl", b'{"text": "tanpa id"}\n', "'id' and 'text'"),
    ("data.pdf", b"%PDF-1.4", "unsupported file type"),
])
def test_bad_input_is_rejected_and_nothing_indexed_is_lost(home: Path, tmp_path: Path, name: str,
                                                            content: bytes, message: str) -> None:
    tanya = Tanya.open(home)
    tanya.add_paths([CORPUS])
    before = tanya.index.store.counts()
    bad = tmp_path / name
    bad.write_bytes(content)
    with pytest.raises(InputError, match=message):
        tanya.add_paths([CORPUS, bad])
    assert tanya.index.store.counts() == before
    assert_consistent(tanya.index)


def test_document_ids_and_paths_are_validated() -> None:
    with pytest.raises(InputError, match="invalid document id"):
        make_document("../etc/passwd", "teks")
    with pytest.raises(InputError, match="no such file"):
        read_paths([Path("/nonexistent/folder")])


def test_titles_come_from_the_first_line_and_stay_short() -> None:
    assert make_document("a", "Judul Singkat\nIsi berita.").title == "Judul Singkat"
    long_first_line = "WASHINGTON, (Panjimas.com) – Tidak ada rencana kerjasama militer AS-Rusia untuk merebut " \
                      "kembali ibukota Islamic State(IS) Raqqa dan kota Palmyra."
    title = make_document("b", long_first_line).title
    assert title.endswith("…") and len(title) <= 101 and long_first_line.startswith(title[:-1])
    assert make_document("c", "Isi", title="Judul dari metadata").title == "Judul dari metadata"


def test_a_second_writer_is_refused_with_a_clear_message(home: Path) -> None:
    from index.errors import IndexBusy
    from index.home import DataHome

    first, second = Index(DataHome.resolve(home)), Index(DataHome.resolve(home))
    with first.writing():
        with pytest.raises(IndexBusy, match="another process is writing"):
            second.add([make_document("x", "Teks baru.")])
        with pytest.raises(IndexBusy):
            second.delete("x")
    assert second.store.counts() == (0, 0, 0)


def test_lone_surrogates_in_jsonl_are_rejected(home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "surrogate.jsonl"
    bad.write_text('{"id": "s", "text": "teks \\ud800 rusak"}\n', encoding="utf-8")
    with pytest.raises(InputError, match="lone surrogate"):
        read_paths([bad])


def test_a_store_of_an_older_layout_is_refused_and_left_as_it_is(seed_home: Path, tmp_path: Path) -> None:
    """Development versions before the 'layout' row changed the tables several times; such a home is
    refused with what to do (never migrated, never touched), through the Python API and the CLI."""
    import sqlite3

    old = tmp_path / "old-home"
    shutil.copytree(seed_home, old)
    db = sqlite3.connect(old / "documents.sqlite3")  # as a version from before filters left it
    with db:
        db.execute("DELETE FROM meta WHERE key IN ('layout', 'vector_metadata')")
        for column in ("source_key", "published_from", "published_to"):
            db.execute(f"ALTER TABLE documents DROP COLUMN {column}")
    db.close()
    before = {p: p.read_bytes() for p in sorted(old.rglob("*")) if p.is_file()}
    with pytest.raises(InputError, match=r"written by a development version of Tanya .* index your documents "
                                         r"again into a new home"):
        Tanya.open(old)
    result = run_cli("ask", "Siapa juru bicara Departemen Luar Negeri AS?", home=old)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "development version" in result.stderr
    after = {p: p.read_bytes() for p in sorted(old.rglob("*")) if p.is_file()}
    assert sorted(after) == sorted(before)
    assert [p for p in before if before[p] != after[p]] == []


def test_a_store_from_just_before_the_layout_row_opens_as_it_is(seed_home: Path, tmp_path: Path) -> None:
    """The last development version wrote today's tables without the row: it opens, gets the row, and
    answers as before."""
    import sqlite3

    from index.store import LAYOUT

    home = tmp_path / "home"
    shutil.copytree(seed_home, home)
    question = "Siapa juru bicara Central Command AS?"
    tanya = Tanya.open(home)
    expected = tanya.ask(question).to_json()
    tanya.close()
    db = sqlite3.connect(home / "documents.sqlite3")
    with db:
        db.execute("DELETE FROM meta WHERE key = 'layout'")
        db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)",
                       [("vector_ids", "versioned"), ("vector_metadata", "dates-sources")])
    db.close()
    tanya = Tanya.open(home)
    try:
        assert tanya.index.store.meta("layout") == LAYOUT
        assert tanya.ask(question).to_json() == expected
    finally:
        tanya.close()


def test_a_byte_order_mark_is_not_part_of_the_text(tmp_path: Path) -> None:
    """Notepad saves UTF-8 with a BOM; it is skipped, so offsets count from the first real character."""
    (tmp_path / "notepad.txt").write_bytes(b"\xef\xbb\xbfJudul\nIsi berita.")
    (tmp_path / "notepad.jsonl").write_bytes(b'\xef\xbb\xbf{"id": "baris", "text": "Isi berita."}\n')
    docs = {d.doc_id: d.text for d in read_paths([tmp_path / "notepad.txt", tmp_path / "notepad.jsonl"])}
    assert docs == {"notepad": "Judul\nIsi berita.", "baris": "Isi berita."}


def test_one_batch_cannot_hold_a_document_id_twice(home: Path) -> None:
    tanya = Tanya.open(home)
    doc = make_document("kembar", "Dokumen yang sama dua kali.")
    with pytest.raises(InputError, match="appears twice"):
        tanya.add([doc, doc])
    assert tanya.documents() == []


def test_a_reopened_index_sees_what_another_process_wrote_meanwhile(home: Path, tmp_path: Path) -> None:
    """Closing gives up embedded Chroma for good: this process's next open must not reuse a client frozen at
    the first open (chromadb keeps one per path), or it would miss the other process's vectors."""
    tanya = Tanya.open(home)
    tanya.add_paths([CORPUS])
    tanya.close()
    extra = tmp_path / "tambahan"
    extra.mkdir()
    (extra / "lewotobi.txt").write_text("Gunung Lewotobi\nGunung Lewotobi Laki-laki meletus pada Senin pagi dan "
                                        "kolom abunya mencapai dua ribu meter.", encoding="utf-8")
    assert run_cli("index", str(extra), home=home).returncode == 0
    reopened = Tanya.open(home)
    hits = reopened.retrieve("Gunung Lewotobi meletus", k=3)
    assert hits[0].doc_id == "lewotobi" and hits[0].dense > 0.5
    assert_consistent(reopened.index)
    reopened.close()


def test_a_file_name_an_id_cannot_hold_is_made_into_one(tmp_path: Path) -> None:
    for name in ("berita banjir Semarang.txt", "opini: harga (BBM).md", "  spasi  .txt"):
        (tmp_path / name).write_text("Judul\nIsi berita.", encoding="utf-8")
    assert sorted(d.doc_id for d in read_paths([tmp_path])) == ["berita-banjir-Semarang", "opini-harga-BBM", "spasi"]


def test_vector_ids_read_back_whatever_the_document_id_holds() -> None:
    """Retrieval reads doc id, chunk and version from the Chroma id (index/vectors.py query_chunks), so
    the split must hold for ids with the separators in them."""
    from index.vectors import parse_vector_id, vector_id

    for doc_id in ("plain", "a#c1", "x@y.com", "berita#c@2016", "päge#c12@"):
        assert parse_vector_id(vector_id(doc_id, 7, "597528f5b92fd423")) == (doc_id, 7, "597528f5b92fd423")
