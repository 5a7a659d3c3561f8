"""Incremental BM25 (index/bm25.py) against bm25s, the library it replaced: the same scores after any
sequence of adds, replacements and deletes, seen from the writing connection, another reader and a
snapshot. Real Indonesian text (the seed corpus and the background news sample), no model needed."""

from __future__ import annotations

import random
from pathlib import Path

import bm25s
import numpy as np
import pytest

from index import bm25 as bm25_module
from index.bm25 import BM25Index
from index.documents import make_document, read_paths
from index.lexical import ANALYZER, tokenize
from index.sentences import group_chunks, split_sentences
from index.store import DocumentRows, DocumentStore
from rag.background import BACKGROUND_FILE
from tests.helpers import CORPUS

QUERIES = ["juru bicara Departemen Luar Negeri AS", "serangan udara Suriah", "Kirby", "Rusia dan Amerika",
           "pemerintah pemerintah harga", "kata yang tidak ada di mana pun"]


def news_texts() -> list[str]:
    lines = [ln for ln in BACKGROUND_FILE.read_text(encoding="utf-8").splitlines()
             if ln and not ln.startswith("#")]
    # Several sentences per article so that documents have several chunks of varied length.
    return [" ".join(lines[i : i + 1 + i % 7]) for i in range(0, len(lines), 3)] + \
           [doc.text for doc in read_paths([CORPUS])]


def put(store: DocumentStore, doc_id: str, text: str) -> None:
    doc = make_document(doc_id, text)
    spans = split_sentences(text)
    chunks = group_chunks(spans)
    no_vectors = np.zeros((len(spans), 384), dtype=np.float32)  # BM25 never reads them
    store.put([DocumentRows(doc, spans, chunks, [tokenize(text[c.start : c.end]) for c in chunks], no_vectors)])


def reference_scores(store: DocumentStore, query: str) -> dict[tuple[str, int], float]:
    """bm25s ("lucene", its defaults) over the store's chunks, from scratch."""
    chunks = list(store.iter_chunks())
    model = bm25s.BM25()
    model.index([tokenize(text) for _, _, text in chunks], show_progress=False)
    terms = [t for t in tokenize(query) if t in model.vocab_dict]
    scores = model.get_scores(terms) if terms else np.zeros(len(chunks))
    return {(doc_id, idx): float(s) for (doc_id, idx, _), s in zip(chunks, scores, strict=True)}


def assert_matches_bm25s(index: BM25Index, store: DocumentStore) -> None:
    every_key = [(doc_id, idx) for doc_id, idx, _ in store.iter_chunks()]
    assert sorted(index.chunk_keys()) == sorted(every_key)
    for query in QUERIES:
        expected = reference_scores(store, query)
        got = index.search(tokenize(query), k=10, also=every_key)
        assert got.keys() == expected.keys()
        for key, score in expected.items():
            assert got[key] == pytest.approx(score, rel=1e-5, abs=1e-6), (query, key)
        top = index.search(tokenize(query), k=10)
        best = sorted((s for s in expected.values() if s > 0), reverse=True)[:10]
        assert sorted(top.values(), reverse=True) == pytest.approx(best, rel=1e-5)
        # A filter (index/filters.py): the best of the allowed documents only, scored as before.
        allowed = {doc_id for doc_id, _ in every_key[::2]}
        top = index.search(tokenize(query), k=10, only=allowed)
        assert {doc_id for doc_id, _ in top} <= allowed
        best = sorted((s for (d, _), s in expected.items() if s > 0 and d in allowed), reverse=True)[:10]
        assert sorted(top.values(), reverse=True) == pytest.approx(best, rel=1e-5)


@pytest.fixture
def store(tmp_path: Path) -> DocumentStore:
    store = DocumentStore(tmp_path / "documents.sqlite3")
    store.reanalyse(ANALYZER, tokenize)
    return store


def test_scores_equal_bm25s_through_adds_replacements_and_deletes(store: DocumentStore, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bm25_module, "MERGE_ENTRIES", 200)  # merge often, so merged and pending entries mix
    texts = news_texts()
    rng = random.Random(7)
    reader = BM25Index(tmp_path / "documents.sqlite3", tmp_path / "bm25" / "snapshot.npz")
    assert len(reader) == 0 and reader.search(tokenize(QUERIES[0]), k=5) == {}
    for i, text in enumerate(texts):
        put(store, f"d{i:02d}", text)
    assert_matches_bm25s(reader, store)
    for step in range(12):  # replace some, delete some, add new ones; check after each round
        ids = [d.doc_id for d in store.documents()]
        for doc_id in rng.sample(ids, 2):
            store.delete(doc_id)
        put(store, rng.choice([d.doc_id for d in store.documents()]), rng.choice(texts))
        for extra in range(2):
            put(store, f"new{step}-{extra}", rng.choice(texts) + f" Tambahan kalimat ke-{step}.")
        assert_matches_bm25s(reader, store)


def test_a_snapshot_plus_later_changes_equals_the_store(store: DocumentStore, tmp_path: Path) -> None:
    snapshot = tmp_path / "bm25" / "snapshot.npz"
    texts = news_texts()
    for i, text in enumerate(texts):
        put(store, f"d{i:02d}", text)
    writer = BM25Index(tmp_path / "documents.sqlite3", snapshot)
    assert writer.save_if_stale() and snapshot.exists()
    assert not writer.save_if_stale()  # nothing changed since
    # Changes after the snapshot are applied from the store when the next process opens it.
    store.delete("d03")
    put(store, "d05", texts[0])
    put(store, "late", texts[1])
    reopened = BM25Index(tmp_path / "documents.sqlite3", snapshot)
    assert_matches_bm25s(reopened, store)


def test_a_damaged_snapshot_is_ignored(store: DocumentStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Garbage, an empty file (a power cut before the data reached the disk) or a truncated one."""
    monkeypatch.setattr(bm25_module, "SNAPSHOT_CHANGES", 0)  # a snapshot even of this small store
    snapshot = tmp_path / "bm25" / "snapshot.npz"
    for i, text in enumerate(news_texts()[:5]):
        put(store, f"d{i:02d}", text)
    BM25Index(tmp_path / "documents.sqlite3", snapshot).save_if_stale()
    whole = snapshot.read_bytes()
    for damaged in (b"not a snapshot", b"", whole[: len(whole) // 2]):
        snapshot.write_bytes(damaged)
        assert_matches_bm25s(BM25Index(tmp_path / "documents.sqlite3", snapshot), store)


def test_terms_of_another_analysis_match_nothing_until_reanalysed(store: DocumentStore, tmp_path: Path) -> None:
    put(store, "d00", news_texts()[-1])
    reader = BM25Index(tmp_path / "documents.sqlite3", tmp_path / "bm25" / "snapshot.npz")
    assert len(reader) > 0
    store.reanalyse("another-analysis", lambda text: text.split())
    assert len(reader) == 0
    store.reanalyse(ANALYZER, tokenize)
    assert_matches_bm25s(reader, store)
