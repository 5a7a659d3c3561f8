"""The on-disk index as one object: document store + Chroma vectors + BM25, kept in agreement.

Write order makes a crash recoverable by simply running ``tanya index`` again: a document's vectors
are replaced first and its store row is written last, so the store only ever claims a content hash
whose vectors are complete. BM25's terms are written in the same transaction as the document.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.schema import BaseNode
from tqdm import tqdm

from index.bm25 import BM25Index
from index.documents import Document, InputError
from index.embedder import configured_backend, embed_passages, load_embedder
from index.home import DataHome
from index.lexical import ANALYZER, tokenize
from index.sentences import Span, group_chunks, split_sentences
from index.store import DocumentStore
from index.vectors import VectorCollections, chunk_id, connect, vector_node

EMBED_BATCH_DOCS = 32


class IndexBusy(RuntimeError):
    """Another process is writing to this index."""


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


class Index:
    def __init__(self, home: DataHome, embedder: BaseEmbedding | None = None) -> None:
        self.home = home
        home.root.mkdir(parents=True, exist_ok=True)
        self._embedder = embedder
        self.store = DocumentStore(home.store_path)
        self.vectors = VectorCollections(connect(home))
        self.backend = self._embedding_backend()
        if self.store.meta("analyzer") != ANALYZER:
            self._reanalyse()
        if self.store.meta("sentence_vectors") == "in chroma":
            self._move_legacy_sentence_vectors()
        self.bm25 = BM25Index(home.store_path, home.bm25_dir / "snapshot.npz")

    @property
    def embedder(self) -> BaseEmbedding:
        """Loaded on first use: listing or deleting documents never pays for the model."""
        if self._embedder is None:
            self._embedder = load_embedder(self.home.model_dir, self.backend)
        return self._embedder

    def _embedding_backend(self) -> str:
        """The backend that made this index's vectors; a new index takes ``TANYA_EMBEDDER``'s."""
        configured = configured_backend()
        # An index from before backends were recorded was made by torch.
        recorded = self.store.set_meta_once("embedder", "torch" if self.store.counts()[0] else configured)
        if os.environ.get("TANYA_EMBEDDER") and recorded != configured:
            raise InputError(f"the index in {self.home.root} was built with the {recorded} embedder; "
                             f"TANYA_EMBEDDER={configured} would mix two kinds of vectors. Unset it, or "
                             "index into a new TANYA_HOME")
        return recorded

    def close(self) -> None:
        self.bm25.close()
        self.store.close()

    @contextmanager
    def writing(self) -> Iterator[None]:
        """One writer at a time per data home (readers never wait)."""
        self.home.root.mkdir(parents=True, exist_ok=True)
        with open(self.home.lock_path, "a+") as lock:
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
            known = self.store.hashes()
            todo = []
            for doc in docs:
                if known.get(doc.doc_id) == doc.content_hash:
                    report.unchanged.append(doc.doc_id)
                else:
                    (report.updated if doc.doc_id in known else report.added).append(doc.doc_id)
                    todo.append(doc)
            bar = tqdm(total=sum(len(d.text) for d in todo), unit="char", unit_scale=True, desc="indexing",
                       disable=not progress or not todo, file=sys.stderr, dynamic_ncols=True)
            for i in range(0, len(todo), EMBED_BATCH_DOCS):
                batch = todo[i : i + EMBED_BATCH_DOCS]
                self._write_batch(batch, report)
                bar.update(sum(len(d.text) for d in batch))
            bar.close()
            self.bm25.save_if_stale()
        report.seconds = time.perf_counter() - start
        return report

    def _write_batch(self, batch: list[Document], report: IndexReport) -> None:
        split = [(doc, spans, group_chunks(spans)) for doc in batch
                 for spans in [split_sentences(doc.text)]]
        for doc, spans, _ in split:
            if not spans:
                raise InputError(f"{doc.doc_id}: no text to index")
        chunk_texts = [doc.text[c.start : c.end] for doc, _, chunks in split for c in chunks]
        sentence_texts = [s.text for _, spans, _ in split for s in spans]
        # One call for both kinds: the embedder sorts all of them by length, so batches pad least.
        vectors = embed_passages(self.embedder, chunk_texts + sentence_texts)
        chunk_vecs, sentence_vecs = iter(vectors[: len(chunk_texts)]), vectors[len(chunk_texts) :]
        chunk_terms = iter([tokenize(text) for text in chunk_texts])
        nodes: list[BaseNode] = [
            vector_node(chunk_id(doc.doc_id, ci), doc.doc_id, doc.text[c.start : c.end], next(chunk_vecs),
                        chunk=ci, start=c.start, end=c.end)
            for doc, _, chunks in split for ci, c in enumerate(chunks)]
        self.vectors.replace_documents([doc.doc_id for doc in batch], nodes)
        first_sentence = 0
        for doc, spans, chunks in split:
            # Last: the store's hash vouches for complete chunk vectors.
            self.store.put(doc, spans, chunks, [next(chunk_terms) for _ in chunks],
                           sentence_vecs[first_sentence : first_sentence + len(spans)])
            first_sentence += len(spans)
            report.sentences += len(spans)
            report.chunks += len(chunks)

    def delete(self, doc_id: str) -> bool:
        with self.writing():
            if self.store.get(doc_id) is None:
                return False
            self.vectors.delete_document(doc_id)
            self.store.delete(doc_id)
            self.bm25.save_if_stale()
            return True

    def _reanalyse(self) -> None:
        """Chunk terms from an older analysis (or none, from before they were kept): analyse every
        chunk again. Another writer at work will find the same and do it when it has finished."""
        try:
            with self.writing():
                if self.store.meta("analyzer") != ANALYZER:
                    self.store.reanalyse(ANALYZER, tokenize)
                    shutil.rmtree(self.home.bm25_dir, ignore_errors=True)  # a snapshot of the old terms
        except IndexBusy:
            pass

    def _move_legacy_sentence_vectors(self) -> None:
        """An older home kept sentence vectors in Chroma: move them into the store (once, by whichever
        process gets the writer's lock first). A document still lacking some is embedded again by
        the next ``tanya index`` of it."""
        try:
            with self.writing():
                for batch in self.vectors.take_legacy_sentence_vectors():
                    self.store.set_sentence_vectors(batch)
                self.store.forget_hashes_of_incomplete()
        except IndexBusy:
            pass

    def spans(self, doc_id: str) -> list[Span]:
        text = self.store.text(doc_id)
        return [Span(s.start, s.end, text[s.start : s.end]) for s in self.store.sentences(doc_id)]
