"""The on-disk index as one object: document store + Chroma vectors + BM25, kept in agreement.

The write protocol, for each batch of documents (a process killed at any point leaves an index that
answers exactly as before the batch, and the next writer finishes or undoes it):

1. the store marks the batch's documents *pending* (committed);
2. their new chunk vectors go to Chroma under new ids (``doc#c3@<version>``), beside the old ones;
3. the store commits the whole batch in one transaction (texts, sentences and their vectors, chunks,
   BM25 terms): the commit point. Retrieval takes only vectors whose version the store holds, so
   before it readers see the old documents, after it the new ones;
4. the old versions' vectors are deleted from Chroma, and the pending marks cleared.

Step 2 may take several Chroma calls (Chroma refuses more than its ``max_batch_size`` vectors in one);
all of them come before the commit point, so a kill between two of them leaves only leftovers. Every
document of a call to ``add`` is split and checked before the first batch is embedded: a document that
cannot be indexed is refused up front, not after minutes of embedding or after earlier batches committed.

A writer starts by removing whatever vectors a killed one left for pending documents (``_recover``).
Deleting a document is the same: the store deletes it and marks it pending in one transaction, then
its vectors go. ``check()`` verifies the whole agreement (``tanya check``).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import chromadb
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.schema import BaseNode
from tqdm import tqdm

from index.bm25 import BM25Index
from index.documents import Document
from index.embedder import configured_backend, embed_passages, load_embedder
from index.errors import IndexBusy, InputError
from index.faults import fault_point
from index.filters import filter_fields
from index.home import DataHome
from index.lexical import ANALYZER, tokenize
from index.sentences import Span, group_chunks, split_sentences
from index.store import DocumentRows, DocumentStore, version_of
from index.vectors import (
    StoreUnavailable,
    VectorCollections,
    connect,
    release_embedded_chroma,
    vector_id,
    vector_node,
)

EMBED_BATCH_DOCS = 32
# Each sentence is embedded (for citing) besides its chunk: at ~240 texts a second on 2 cores this is
# ~8 minutes of embedding for one document, beyond which it is refused up front (a 5,000,000-character
# article collection has ~40,000 sentences; 5M characters of "a. " would take hours).
MAX_DOCUMENT_SENTENCES = 100_000


@dataclass
class IndexReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    sentences: int = 0
    chunks: int = 0
    seconds: float = 0.0

    def summary(self) -> str:
        return (f"{len(self.added)} added, {len(self.updated)} updated, {len(self.unchanged)} unchanged; "
                f"{self.sentences} sentences in {self.chunks} chunks embedded; {self.seconds:.1f} s")


@dataclass
class CheckReport:
    """What ``Index.check`` found: counts, and problems (none in a sound index)."""

    documents: int
    sentences: int
    chunks: int
    vectors: int
    leftovers: int  # vectors of no stored version: a killed writer's, removed by the next writer
    pending: int  # documents a killed writer was changing
    problems: list[str] = field(default_factory=list)

    def summary(self) -> str:
        state = "consistent" if not self.problems else "INCONSISTENT: " + "; ".join(self.problems)
        left = (f"; a write was interrupted: {self.pending} documents pending, {self.leftovers} leftover vectors "
                "(invisible to questions; the next `tanya index` or delete removes them)"
                if self.pending or self.leftovers else "")
        return (f"{state}: {self.documents} documents, {self.sentences} sentences, {self.chunks} chunks, "
                f"{self.vectors - self.leftovers} chunk vectors{left}")


class Index:
    def __init__(self, home: DataHome, embedder: BaseEmbedding | None = None,
                 finish_interrupted_writes: bool = True) -> None:
        """``finish_interrupted_writes=False`` leaves a killed writer's leftovers for ``check`` to see."""
        self.home = home
        home.root.mkdir(parents=True, exist_ok=True)
        self._embedder = embedder
        self._writers = threading.Lock()
        self._finish_interrupted_writes = finish_interrupted_writes
        self.store = DocumentStore(home.store_path)
        self._chroma: chromadb.ClientAPI | None = None
        try:
            self._chroma = connect(home)  # with embedded Chroma, this process now holds the home
            self.vectors = VectorCollections(self._chroma)
            self.backend = self._embedding_backend()
            if self.store.meta("analyzer") != ANALYZER:
                self._reanalyse()
            self.bm25 = BM25Index(home.store_path, home.bm25_dir / "snapshot.npz")
            if finish_interrupted_writes and self.store.pending():
                self._try_recover()  # a killed writer's leftovers
        except BaseException:
            self._close_vectors()
            self.store.close()
            raise

    @property
    def embedder(self) -> BaseEmbedding:
        """Loaded on first use: listing or deleting documents never pays for the model."""
        if self._embedder is None:
            self._embedder = load_embedder(self.home.model_dir, self.backend)
        return self._embedder

    def _embedding_backend(self) -> str:
        """The backend that made this index's vectors; a new index takes ``TANYA_EMBEDDER``'s."""
        configured = configured_backend()
        recorded = self.store.set_meta_once("embedder", configured)
        if os.environ.get("TANYA_EMBEDDER") and recorded != configured:
            raise InputError(f"the index in {self.home.root} was built with the {recorded} embedder; "
                             f"TANYA_EMBEDDER={configured} would mix two kinds of vectors. Unset it, or "
                             "index into a new TANYA_HOME")
        return recorded

    def close(self) -> None:
        try:
            self.bm25.close()
            self.store.close()
        finally:
            self._close_vectors()  # the embedded lock is given up whatever else failed

    def _close_vectors(self) -> None:
        """Close Chroma before giving up the embedded lock: chromadb keeps one client per path inside a
        process, and one left open would be reused, frozen, by this process's next open."""
        if self._chroma is not None:
            self._chroma.close()  # type: ignore[attr-defined]  # Client has it; the ClientAPI stub not
            if not self.home.chroma_url:
                release_embedded_chroma(self.home)
            self._chroma = None

    @contextmanager
    def writing(self) -> Iterator[None]:
        """One writer at a time per data home: writers through this Index (the web server's uploads) wait
        their turn; another process, or another Index, writing makes this one fail with IndexBusy.
        Readers never wait."""
        if self.store.in_snapshot():  # its reads would be stale, and step (4) would trust them
            raise RuntimeError("cannot write inside a read snapshot")
        self.home.root.mkdir(parents=True, exist_ok=True)
        with self._writers, open(self.home.lock_path, "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise IndexBusy(f"another process is writing to the index in {self.home.root}; "
                                "try again when it has finished") from None
            lock.seek(0)
            lock.truncate()
            lock.write(str(os.getpid()))
            lock.flush()
            yield

    def add(self, docs: list[Document], progress: bool = True) -> IndexReport:
        """Index new and changed documents; unchanged ones (same content hash) are skipped."""
        start = time.perf_counter()
        report = IndexReport()
        with self.writing():
            self._recover()
            known = self.store.hashes()
            todo = []
            seen: set[str] = set()
            for doc in docs:
                if doc.doc_id in seen:
                    raise InputError(f"document id {doc.doc_id!r} appears twice in one batch")
                seen.add(doc.doc_id)
                if known.get(doc.doc_id) == doc.content_hash:
                    report.unchanged.append(doc.doc_id)
                else:
                    (report.updated if doc.doc_id in known else report.added).append(doc.doc_id)
                    todo.append(doc)
            spans = {doc.doc_id: self._sentences(doc) for doc in todo}  # all checked before any is written
            bar = tqdm(total=sum(len(d.text) for d in todo), unit="char", unit_scale=True, desc="indexing",
                       disable=not progress or not todo, file=sys.stderr, dynamic_ncols=True)
            for i in range(0, len(todo), EMBED_BATCH_DOCS):
                batch = todo[i : i + EMBED_BATCH_DOCS]
                self._write_batch([(doc, spans.pop(doc.doc_id)) for doc in batch], report)
                bar.update(sum(len(d.text) for d in batch))
            bar.close()
            self.bm25.save_if_stale()
        report.seconds = time.perf_counter() - start
        return report

    @staticmethod
    def _sentences(doc: Document) -> list[Span]:
        spans = split_sentences(doc.text)
        if not spans:
            raise InputError(f"{doc.doc_id}: no text to index")
        if len(spans) > MAX_DOCUMENT_SENTENCES:
            raise InputError(f"{doc.doc_id}: the document has {len(spans):,} sentences; the limit is "
                             f"{MAX_DOCUMENT_SENTENCES:,} (split it into several documents)")
        return spans

    def _write_batch(self, sentences: list[tuple[Document, list[Span]]], report: IndexReport) -> None:
        batch = [doc for doc, _ in sentences]
        split = [(doc, spans, group_chunks(spans)) for doc, spans in sentences]
        chunk_texts = [doc.text[c.start : c.end] for doc, _, chunks in split for c in chunks]
        sentence_texts = [s.text for _, spans, _ in split for s in spans]
        # One call for both kinds: the embedder sorts all of them by length, so batches pad least.
        vectors = embed_passages(self.embedder, chunk_texts + sentence_texts)
        fault_point("embedded")
        chunk_vecs, sentence_vecs = iter(vectors[: len(chunk_texts)]), vectors[len(chunk_texts) :]
        chunk_terms = iter([tokenize(text) for text in chunk_texts])
        nodes: list[BaseNode] = [
            vector_node(doc.doc_id, ci, version_of(doc.content_hash), doc.text[c.start : c.end], next(chunk_vecs),
                        start=c.start, end=c.end, **filter_fields(doc.date, doc.source))
            for doc, _, chunks in split for ci, c in enumerate(chunks)]
        doc_ids = [doc.doc_id for doc in batch]
        self.store.mark_pending(doc_ids)  # (1)
        # (2) An id names a version of a chunk, so one that exists already holds these very vectors (a
        # document whose sentence vectors had to be redone: store.forget_hashes_of_incomplete); keep it.
        existing = self.vectors.versions(doc_ids)
        self.vectors.add([n for n in nodes if n.node_id not in existing])
        fault_point("vectors_added")
        rows, first_sentence = [], 0
        for doc, spans, chunks in split:
            rows.append(DocumentRows(doc, spans, chunks, [next(chunk_terms) for _ in chunks],
                                     sentence_vecs[first_sentence : first_sentence + len(spans)]))
            first_sentence += len(spans)
            report.sentences += len(spans)
            report.chunks += len(chunks)
        self.store.put(rows)  # (3) the commit point
        fault_point("committed")
        try:
            self.vectors.remove_leftovers(doc_ids, self.store.versions(doc_ids))  # (4)
            fault_point("leftovers_removed")
            self.store.clear_pending(doc_ids)
        except StoreUnavailable:
            pass  # the batch is committed; the next writer removes the old vectors

    def delete(self, doc_id: str) -> bool:
        with self.writing():
            self._recover()
            self.vectors.versions([doc_id])  # a Chroma server that is down fails here, before any change
            if not self.store.delete(doc_id):  # also marks it pending
                self.store.clear_pending([doc_id])
                return False
            fault_point("deleted")
            try:
                self.vectors.remove_leftovers([doc_id], {})
                self.store.clear_pending([doc_id])
            except StoreUnavailable:
                pass  # deleted all the same (committed); the next writer removes its vectors
            self.bm25.save_if_stale()
            return True

    def _try_recover(self) -> None:
        """``_recover`` now, unless another process is writing (it recovers first itself)."""
        try:
            with self.writing():
                self._recover()
        except IndexBusy:
            pass

    def _recover(self) -> None:
        """Remove the vectors a killed writer left for its pending documents (caller holds the lock)."""
        pending = self.store.pending()
        if pending:
            removed = self.vectors.remove_leftovers(pending, self.store.versions(pending))
            self.store.clear_pending(pending)
            print(f"recovered from an interrupted write: {len(pending)} documents checked, {removed} leftover "
                  "vectors removed", file=sys.stderr)

    def _reanalyse(self) -> None:
        """Chunk terms from another analysis (index/lexical.py ANALYZER changed): analyse every chunk
        again. Another writer at work will find the same and do it when it has finished."""
        try:
            with self.writing():
                if self.store.meta("analyzer") != ANALYZER:
                    self.store.reanalyse(ANALYZER, tokenize)
                    shutil.rmtree(self.home.bm25_dir, ignore_errors=True)  # a snapshot of the old terms
        except IndexBusy:
            pass

    def check(self) -> CheckReport:
        """Verify that the store, Chroma and BM25 agree: every stored chunk has exactly one vector of its
        document's version and a BM25 entry, every sentence its vector and offsets inside its text."""
        with self.writing(), self.store.snapshot():  # nothing changes while it looks
            return self._check()

    def _check(self) -> CheckReport:
        documents, sentences, chunks = self.store.counts()
        live = self.store.versions()
        stored = self.vectors.versions()
        keys = self.store.chunk_keys()
        expected = {vector_id(doc_id, chunk, live[doc_id]) for doc_id, chunk in keys}
        live_vectors = {vid for vid, (doc_id, version) in stored.items()
                        if version is not None and live.get(doc_id) == version}
        report = CheckReport(documents, sentences, chunks, len(stored), len(stored) - len(live_vectors),
                             len(self.store.pending()))
        if missing := len(expected - live_vectors):
            report.problems.append(f"{missing} chunks have no vector in Chroma")
        if extra := len(live_vectors - expected):
            report.problems.append(f"{extra} vectors in Chroma name chunks the store does not hold")
        if sorted(self.bm25.chunk_keys()) != sorted(keys):
            report.problems.append("BM25 and the store hold different chunks")
        if without := self.store.sentences_without_vectors():
            report.problems.append(f"{without} sentences have no vector")
        if outside := self.store.sentences_out_of_bounds():
            report.problems.append(f"{outside} sentences have offsets outside their document")
        return report
