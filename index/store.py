"""The document store: the one source of truth, and everything Tanya keeps besides chunk vectors.

SQLite (stdlib, one file, transactional): documents, sentence offsets and sentence vectors, chunks,
and each chunk's BM25 terms, all written in one transaction per batch of documents. Chroma holds the
chunk vectors (the only thing searched by similarity); a vector counts only if it names a (doc_id,
chunk) stored here with the document's current version (index/index.py: the write protocol), and a
citation's offsets come from here. Moving Tanya's state means moving this file (and Chroma).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np

from index.documents import Document
from index.errors import InputError
from index.filters import DocumentFilter, filter_fields
from index.sentences import Chunk, Span

_SCHEMA = """
CREATE TABLE IF NOT EXISTS documents (
    doc_id TEXT PRIMARY KEY, title TEXT NOT NULL, date TEXT, source TEXT, text TEXT NOT NULL,
    content_hash TEXT NOT NULL, indexed_at REAL NOT NULL, url TEXT, date_inferred INTEGER NOT NULL DEFAULT 0,
    source_key TEXT, published_from INTEGER, published_to INTEGER);  -- index/filters.py filter_fields
-- vector: the sentence's embedding (float16), read by the sentence scorer for ~60 sentences per
-- question and never searched, so it lives here rather than in Chroma, where any read of a collection
-- loads its whole HNSW graph (+1.4 GB at 700k sentences; benchmarks/README.md).
CREATE TABLE IF NOT EXISTS sentences (
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE, idx INTEGER NOT NULL,
    start INTEGER NOT NULL, "end" INTEGER NOT NULL, chunk INTEGER NOT NULL, vector BLOB,
    PRIMARY KEY (doc_id, idx));
CREATE TABLE IF NOT EXISTS chunks (
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE, idx INTEGER NOT NULL,
    first INTEGER NOT NULL, last INTEGER NOT NULL, start INTEGER NOT NULL, "end" INTEGER NOT NULL,
    PRIMARY KEY (doc_id, idx));
-- Each chunk's analysed terms (index/lexical.py), space-separated: what BM25 (index/bm25.py) indexes.
-- The id never repeats (AUTOINCREMENT), so a reader can tell new rows from ones it already has.
CREATE TABLE IF NOT EXISTS chunk_terms (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE, chunk INTEGER NOT NULL,
    terms TEXT NOT NULL, UNIQUE (doc_id, chunk));
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
-- Documents whose chunk vectors a writer is changing in Chroma (index/index.py: the write protocol).
-- A row left behind means a writer was killed; the next writer removes the vectors it left.
CREATE TABLE IF NOT EXISTS pending (doc_id TEXT PRIMARY KEY);
"""

# What this code writes. A store that holds documents in another layout came from a development version
# before this row existed (the layout changed several times before the first release): it is refused with
# what to do, never migrated in place or touched. Bump it, and refuse or convert the previous one in
# ``_check_layout``, when the tables or what Chroma keeps change.
LAYOUT = "2026-12"
# What a store written by the last development version's code looked like (besides these columns: the
# meta rows its now-removed upgrade steps left once finished); such a store is in this layout.
_FINISHED_UPGRADES = {"vector_ids": "versioned", "vector_metadata": "dates-sources"}

VERSION_CHARS = 16  # a document's vector version: the first characters of its content hash


@dataclass(frozen=True)
class DocumentInfo:
    doc_id: str
    title: str
    date: str | None
    source: str | None
    sentences: int
    chars: int
    url: str | None
    date_inferred: bool


@dataclass(frozen=True)
class SentenceRef:
    doc_id: str
    idx: int
    start: int
    end: int
    chunk: int


@dataclass(frozen=True)
class DocumentRows:
    """Everything the store keeps of one document, written together."""

    doc: Document
    spans: list[Span]
    chunks: list[Chunk]
    chunk_terms: list[list[str]]
    sentence_vectors: np.ndarray


def version_of(content_hash: str) -> str:
    """The version that names a document's chunk vectors in Chroma (index/vectors.py)."""
    return content_hash[:VERSION_CHARS]


def _filter_columns(date: str | None, source: str | None) -> tuple[str, int | None, int | None]:
    fields = filter_fields(date, source)
    return (str(fields["source_key"]), cast(int | None, fields.get("published_from")),
            cast(int | None, fields.get("published_to")))


def _blob(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype=np.float16).tobytes()


class DocumentStore:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._path = path
        # Writes go through one connection; reads through one connection per thread (the web server
        # answers from worker threads), so a question can read from one committed state (``snapshot``)
        # while a writer commits beside it.
        self._writer = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._writer.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives a killed process; only a power cut may undo the last ones
        # (the store stays consistent, and `tanya index` redoes them). FULL fsyncs every batch.
        self._writer.execute("PRAGMA synchronous=NORMAL")
        self._writer.execute("PRAGMA foreign_keys=ON")
        self._writer.execute("PRAGMA busy_timeout=30000")  # another process's commit in progress
        self._writer.executescript(_SCHEMA)
        try:
            self._check_layout()
        except BaseException:
            self._writer.close()
            raise
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._text_cache: dict[tuple[str, str], str] = {}  # (doc_id, content hash) -> text

    @property
    def _db(self) -> sqlite3.Connection:
        """This thread's read connection."""
        db = getattr(self._local, "db", None)
        if db is None:
            db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            db.execute("PRAGMA busy_timeout=30000")
            self._local.db = db
            with self._readers_lock:
                self._readers.append(db)
        return db

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Every read of this thread inside sees one committed state of the store (a read transaction),
        so a question's offsets, texts and versions agree even while a writer commits."""
        if getattr(self._local, "in_snapshot", False):
            yield
            return
        self._db.execute("BEGIN")
        self._local.in_snapshot = True
        self._local.hashes = {}  # doc_id -> content hash: cannot change inside the snapshot
        try:
            yield
        finally:
            self._local.in_snapshot = False
            self._local.hashes = None
            self._db.execute("COMMIT")

    def in_snapshot(self) -> bool:
        return bool(getattr(self._local, "in_snapshot", False))

    def close(self) -> None:
        with self._readers_lock:
            for db in self._readers:
                db.close()
            self._readers.clear()
        self._local = threading.local()
        self._writer.close()

    def hashes(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT doc_id, content_hash FROM documents"))

    def put(self, batch: list[DocumentRows]) -> None:
        """Insert or replace documents with their sentences (and their vectors), chunks and each chunk's
        analysed terms, in one transaction: the commit point of a batch (index/index.py), and why a
        killed writer leaves whole batches, never part of one."""
        with self._transaction():
            for rows in batch:
                self._put(rows)

    def _put(self, rows: DocumentRows) -> None:  # inside put's transaction
        doc, chunks = rows.doc, rows.chunks
        chunk_of = {i: c_idx for c_idx, c in enumerate(chunks) for i in range(c.first, c.last + 1)}
        self._writer.execute("DELETE FROM documents WHERE doc_id = ?", (doc.doc_id,))
        self._writer.execute("INSERT INTO documents (doc_id, title, date, source, text, content_hash, indexed_at, url, "
                             "date_inferred, source_key, published_from, published_to) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (doc.doc_id, doc.title, doc.date, doc.source, doc.text, doc.content_hash, time.time(),
                              doc.url, int(doc.date_inferred), *_filter_columns(doc.date, doc.source)))
        self._writer.executemany("INSERT INTO sentences VALUES (?, ?, ?, ?, ?, ?)",
                             [(doc.doc_id, i, s.start, s.end, chunk_of[i], _blob(vec))
                              for i, (s, vec) in enumerate(zip(rows.spans, rows.sentence_vectors, strict=True))])
        self._writer.executemany("INSERT INTO chunks VALUES (?, ?, ?, ?, ?, ?)",
                             [(doc.doc_id, i, c.first, c.last, c.start, c.end) for i, c in enumerate(chunks)])
        self._writer.executemany("INSERT INTO chunk_terms (doc_id, chunk, terms) VALUES (?, ?, ?)",
                             [(doc.doc_id, i, " ".join(terms)) for i, terms in enumerate(rows.chunk_terms)])

    def delete(self, doc_id: str) -> bool:
        """Remove a document, and mark it pending: its vectors in Chroma are now leftovers."""
        with self._transaction():
            deleted = self._writer.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,)).rowcount
            self._writer.execute("INSERT OR IGNORE INTO pending VALUES (?)", (doc_id,))
        return deleted > 0

    def mark_pending(self, doc_ids: list[str]) -> None:
        with self._transaction():
            self._writer.executemany("INSERT OR IGNORE INTO pending VALUES (?)", [(d,) for d in doc_ids])

    def clear_pending(self, doc_ids: list[str]) -> None:
        with self._transaction():
            self._writer.executemany("DELETE FROM pending WHERE doc_id = ?", [(d,) for d in doc_ids])

    def pending(self) -> list[str]:
        return [row[0] for row in self._db.execute("SELECT doc_id FROM pending ORDER BY doc_id")]

    def versions(self, doc_ids: set[str] | list[str] | None = None) -> dict[str, str]:
        """The current vector version of each stored document (all of them when ``doc_ids`` is None);
        a chunk vector of any other version is a leftover, invisible to retrieval."""
        query = f"SELECT doc_id, substr(content_hash, 1, {VERSION_CHARS}) FROM documents"
        if doc_ids is None:
            return dict(self._db.execute(query))
        ids = list(doc_ids)
        out: dict[str, str] = {}
        for i in range(0, len(ids), 500):  # SQLite's limit on bound parameters
            part = ids[i : i + 500]
            out.update(self._db.execute(f"{query} WHERE doc_id IN ({','.join('?' * len(part))})", part))
        return out

    def meta(self, key: str) -> str | None:
        """Facts about the whole index: 'layout' (LAYOUT), 'analyzer' (what made the chunk terms),
        'embedder' (the backend that made the vectors)."""
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _check_layout(self) -> None:
        """Stamp a new store with LAYOUT; refuse one of another layout (see LAYOUT). Decided inside one
        write transaction, so two processes opening a new home at once cannot see each other half-way."""
        if self._writer.execute("SELECT value FROM meta WHERE key = 'layout'").fetchone() == (LAYOUT,):
            return
        with self._transaction():
            meta = dict(self._writer.execute("SELECT key, value FROM meta").fetchall())
            if meta.get("layout") == LAYOUT:
                return
            tables = {table: {row[1] for row in self._writer.execute(f"PRAGMA table_info({table})")}
                      for table in ("documents", "sentences")}
            todays_tables = {"url", "date_inferred", "published_to"} <= tables["documents"] and \
                "vector" in tables["sentences"]
            empty = self._writer.execute("SELECT COUNT(*) FROM documents").fetchone()[0] == 0
            finished = "sentence_vectors" not in meta and all(meta.get(k) == v for k, v in _FINISHED_UPGRADES.items())
            if "layout" in meta or not todays_tables or not (empty or finished):
                raise InputError(f"the index in {self._path.parent} was written by a development version of Tanya "
                                 f"(layout {meta.get('layout', 'before 2026-12')}; this one reads {LAYOUT}): index "
                                 "your documents again into a new home (TANYA_HOME or --home); this one is left as "
                                 "it is")
            self._writer.execute("INSERT INTO meta VALUES ('layout', ?)", (LAYOUT,))

    def set_meta_once(self, key: str, value: str) -> str:
        """Record ``value`` unless the key already has one; returns the value that holds."""
        self._writer.execute("INSERT OR IGNORE INTO meta VALUES (?, ?)", (key, value))
        return self.meta(key) or value

    def reanalyse(self, analyzer: str, analyse: Callable[[str], list[str]]) -> None:
        """Replace every chunk's terms with a new analysis, in one transaction (an upgrade, or a
        store from before chunk terms were kept)."""
        with self._transaction():
            self._writer.execute("DELETE FROM chunk_terms")
            rows = list(self.iter_chunks())
            self._writer.executemany("INSERT INTO chunk_terms (doc_id, chunk, terms) VALUES (?, ?, ?)",
                                 [(doc_id, idx, " ".join(analyse(text))) for doc_id, idx, text in rows])
            self._writer.execute("INSERT OR REPLACE INTO meta VALUES ('analyzer', ?)", (analyzer,))

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._writer.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._writer.execute("ROLLBACK")
            raise
        self._writer.execute("COMMIT")

    def documents(self) -> list[DocumentInfo]:
        rows = self._db.execute(
            "SELECT d.doc_id, d.title, d.date, d.source, "
            "(SELECT COUNT(*) FROM sentences s WHERE s.doc_id = d.doc_id), length(d.text), d.url, "
            "d.date_inferred = 1 "
            "FROM documents d ORDER BY d.doc_id")
        return [DocumentInfo(doc_id, title, date, source, sentences, chars, url, bool(inferred))
                for doc_id, title, date, source, sentences, chars, url, inferred in rows]

    def allowed_documents(self, doc_filter: DocumentFilter) -> set[str]:
        """The documents a filter lets through (index/filters.py holds the rule)."""
        where, params = doc_filter.sql_where()
        return {row[0] for row in self._db.execute(f"SELECT doc_id FROM documents WHERE {where}", params)}

    def sources(self) -> list[tuple[str, int]]:
        """Each publisher the documents name (as filters tell them apart: index/filters.py ``source_key``,
        shown in its most used spelling), with how many documents it has, most first."""
        counts: dict[str, dict[str, int]] = {}
        for key, source, n in self._db.execute("SELECT source_key, source, COUNT(*) FROM documents "
                                               "WHERE source_key != '' GROUP BY source_key, source"):
            counts.setdefault(key, {})[source] = n
        named = [(max(spellings, key=lambda s: (spellings[s], s)), sum(spellings.values()))
                 for spellings in counts.values()]
        return sorted(named, key=lambda item: (-item[1], item[0]))

    def get(self, doc_id: str) -> Document | None:
        row = self._db.execute("SELECT doc_id, text, title, date, source, url, date_inferred = 1 FROM documents "
                               "WHERE doc_id = ?",
                               (doc_id,)).fetchone()
        if row is None:
            return None
        doc_id, text, title, date, source, url, inferred = row
        return Document(doc_id, text, title, date, source, url, bool(inferred))

    def sentence_text(self, ref: SentenceRef) -> str:
        """The sentence itself: its document's text at its offsets (what every citation quotes)."""
        return self.text(ref.doc_id)[ref.start : ref.end]

    def text(self, doc_id: str) -> str:
        known = getattr(self._local, "hashes", None)
        content_hash = known.get(doc_id) if known is not None else None
        if content_hash is None:
            row = self._db.execute("SELECT content_hash FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
            if row is None:
                raise KeyError(doc_id)
            content_hash = row[0]
            if known is not None:
                known[doc_id] = content_hash
        key = (doc_id, content_hash)  # a replaced document is read anew, never served from the cache
        text = self._text_cache.get(key)
        if text is None:
            # By hash too: outside a snapshot a writer may commit between the two reads.
            row = self._db.execute("SELECT text FROM documents WHERE doc_id = ? AND content_hash = ?",
                                   key).fetchone()
            if row is None:
                raise KeyError(doc_id)
            if len(self._text_cache) > 2048:
                self._text_cache.clear()
            text = self._text_cache[key] = row[0]
        return text

    def titles(self, doc_ids: set[str]) -> dict[str, tuple[str, str | None, str | None, str | None]]:
        """(title, date, source, url) of each document: what a citation shows of its article."""
        ids, out = list(doc_ids), {}
        for i in range(0, len(ids), 500):  # SQLite's limit on bound parameters
            part = ids[i : i + 500]
            rows = self._db.execute(f"SELECT doc_id, title, date, source, url FROM documents "
                                    f"WHERE doc_id IN ({','.join('?' * len(part))})", part)
            out.update({doc_id: (title, date, source, url) for doc_id, title, date, source, url in rows})
        return out

    def sentences(self, doc_id: str) -> list[SentenceRef]:
        rows = self._db.execute('SELECT doc_id, idx, start, "end", chunk FROM sentences WHERE doc_id = ? '
                                "ORDER BY idx", (doc_id,))
        return [SentenceRef(*row) for row in rows]

    def sentences_of_chunks(self, chunk_keys: list[tuple[str, int]]) -> list[SentenceRef]:
        out: list[SentenceRef] = []
        for doc_id, chunk in chunk_keys:
            rows = self._db.execute('SELECT doc_id, idx, start, "end", chunk FROM sentences '
                                    "WHERE doc_id = ? AND chunk = ? ORDER BY idx", (doc_id, chunk))
            out.extend(SentenceRef(*row) for row in rows)
        return out

    def sentence_vectors(self, refs: list[SentenceRef]) -> dict[tuple[str, int], np.ndarray]:
        """Stored vectors by (doc_id, idx), as float32; sentences without one are absent."""
        out = {}
        for ref in refs:
            row = self._db.execute("SELECT vector FROM sentences WHERE doc_id = ? AND idx = ?",
                                   (ref.doc_id, ref.idx)).fetchone()
            if row is not None and row[0] is not None:
                out[(ref.doc_id, ref.idx)] = np.frombuffer(row[0], dtype=np.float16).astype(np.float32)
        return out

    def sentences_without_vectors(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM sentences WHERE vector IS NULL").fetchone()[0])

    def chunk_span(self, doc_id: str, chunk: int) -> tuple[int, int]:
        row = self._db.execute('SELECT start, "end" FROM chunks WHERE doc_id = ? AND idx = ?',
                               (doc_id, chunk)).fetchone()
        if row is None:
            raise KeyError((doc_id, chunk))
        return row[0], row[1]

    def iter_chunks(self) -> Iterator[tuple[str, int, str]]:
        """(doc_id, chunk idx, chunk text) for every chunk, in a stable order."""
        cursor = self._db.execute('SELECT c.doc_id, c.idx, substr(d.text, c.start + 1, c."end" - c.start) '
                                  "FROM chunks c JOIN documents d USING (doc_id) ORDER BY c.doc_id, c.idx")
        yield from cursor

    def chunk_keys(self) -> list[tuple[str, int]]:
        return [(doc_id, idx) for doc_id, idx in self._db.execute("SELECT doc_id, idx FROM chunks")]

    def sentences_out_of_bounds(self) -> int:
        """Sentences whose offsets do not lie inside their document (0 in any sound store)."""
        return int(self._db.execute(
            'SELECT COUNT(*) FROM sentences s JOIN documents d USING (doc_id) '
            'WHERE s.start < 0 OR s."end" <= s.start OR s."end" > length(d.text)').fetchone()[0])

    def document_count(self) -> int:
        return int(self._db.execute("SELECT COUNT(*) FROM documents").fetchone()[0])

    def counts(self) -> tuple[int, int, int]:
        return tuple(self._db.execute(  # type: ignore[return-value]
            "SELECT (SELECT COUNT(*) FROM documents), (SELECT COUNT(*) FROM sentences), "
            "(SELECT COUNT(*) FROM chunks)").fetchone())

