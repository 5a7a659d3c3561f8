"""Chroma access: an embedded PersistentClient in the data home, or a ``chroma run`` server.

One collection of chunk vectors (dense retrieval), written through llama-index's ChromaVectorStore
and created with ``embedding_function=None``: Chroma's default one downloads a model. A vector's id
carries its document's version (``doc#c3@<version>``, index/store.py ``version_of``), so a document's new
vectors are added beside the old ones and the old are removed only after the store commits the new
version: a killed writer never leaves a document without vectors, and retrieval only takes vectors whose
version the store holds. Sentence
vectors live in the document store (index/store.py says why).
"""

from __future__ import annotations

import fcntl
import os
import sys
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TextIO, cast
from urllib.parse import urlparse

import chromadb
import httpx
import numpy as np
from chromadb.api.types import Where
from chromadb.config import Settings as ChromaSettings
from llama_index.core.schema import BaseNode, NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import MetadataFilters
from llama_index.vector_stores.chroma import ChromaVectorStore

# The same translation of llama-index filters to a Chroma `where` that ChromaVectorStore.query makes.
from llama_index.vector_stores.chroma.base import _to_chroma_filter

from index.errors import StoreInUse, StoreUnavailable
from index.home import DataHome

CHUNKS = "tanya_chunks"


@contextmanager
def reachable() -> Iterator[None]:
    """Turn a lost connection to a Chroma server into StoreUnavailable (a 503, a one-line CLI error);
    the next call simply tries again, so a server that comes back needs no restart."""
    try:
        yield
    except httpx.TransportError as exc:
        raise StoreUnavailable(f"the index is unavailable: the Chroma server cannot be reached ({exc}); is it "
                               "running?") from None


# Embedded Chroma's files belong to one process: a second one reads a vector index frozen at its open
# (new rows raise "Error finding id", deleted ones come back), and two writing corrupt it silently
# (measured; docs/reliability.md). So each process holds an exclusive lock on the home while it has it
# open; Index objects of one process share it.
_chroma_locks: dict[Path, tuple[TextIO, int]] = {}
_chroma_locks_guard = threading.Lock()


def _own_embedded_chroma(home: DataHome) -> None:
    path = home.chroma_lock_path.resolve()
    with _chroma_locks_guard:
        if path in _chroma_locks:
            handle, users = _chroma_locks[path]
            _chroma_locks[path] = (handle, users + 1)
            return
        # backslashreplace: the command line may hold bytes that are not UTF-8 (surrogates in sys.argv)
        handle = open(path, "a+", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115  (held until release)
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            handle.close()
            raise StoreInUse(
                f"the index in {home.root} is open in {holder}. Its embedded Chroma serves one process at a "
                "time: add documents and ask through that process (a running `tanya serve` has the web page's "
                "upload and POST /api/documents), wait for it to finish, or share the index through a Chroma "
                "server (README: Several processes)") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} ({' '.join(['tanya', *sys.argv[1:]]) if sys.argv else 'python'})")
        handle.flush()
        _chroma_locks[path] = (handle, 1)


def release_embedded_chroma(home: DataHome) -> None:
    path = home.chroma_lock_path.resolve()
    with _chroma_locks_guard:
        if path not in _chroma_locks:
            return
        handle, users = _chroma_locks.pop(path)
        if users > 1:
            _chroma_locks[path] = (handle, users - 1)
        else:
            handle.close()


def connect(home: DataHome) -> chromadb.ClientAPI:
    settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if not home.chroma_url:
        home.chroma_dir.mkdir(parents=True, exist_ok=True)
        _own_embedded_chroma(home)
        try:
            return chromadb.PersistentClient(path=str(home.chroma_dir), settings=settings)
        except BaseException:
            release_embedded_chroma(home)  # a client that failed to open must not keep the home locked
            raise
    url = urlparse(home.chroma_url if "://" in home.chroma_url else f"http://{home.chroma_url}")
    try:
        return chromadb.HttpClient(host=url.hostname or "127.0.0.1", port=url.port or 8000,
                                   ssl=url.scheme == "https", settings=settings)
    except Exception as exc:  # chromadb raises plain exceptions for connection failures
        raise StoreUnavailable(f"cannot reach the Chroma server at {home.chroma_url}: {exc}") from None


def vector_node(doc_id: str, chunk: int, version: str, text: str, embedding: np.ndarray,
                **meta: int | str) -> TextNode:
    """A chunk vector; ``meta`` holds its offsets and its document's ``index.filters.filter_fields``."""
    keys = ["chunk", "version", *meta]
    node = TextNode(id_=vector_id(doc_id, chunk, version), text=text, embedding=embedding.tolist(),
                    metadata={"doc_id": doc_id, "chunk": chunk, "version": version, **meta},
                    excluded_embed_metadata_keys=keys, excluded_llm_metadata_keys=keys)
    # The SOURCE relationship becomes Chroma's `document_id`, which ChromaVectorStore.delete() uses.
    node.relationships[NodeRelationship.SOURCE] = RelatedNodeInfo(node_id=doc_id)
    return node


class VectorCollections:
    def __init__(self, client: chromadb.ClientAPI) -> None:
        self.client = client
        meta = {"hnsw:space": "cosine"}
        try:
            self.chunk_collection = client.get_or_create_collection(CHUNKS, metadata=meta,
                                                                    embedding_function=None)
            # Chroma refuses more than this many records in one call (5,461 embedded, from SQLite's limit on
            # query variables); llama-index's ChromaVectorStore splits only at 41,665.
            self.max_batch = min(5000, client.get_max_batch_size())
        except Exception as exc:
            raise StoreUnavailable(f"the vector store is unavailable: {exc}") from None
        self.chunks = ChromaVectorStore(chroma_collection=self.chunk_collection)

    def add(self, chunk_nodes: Sequence[BaseNode]) -> None:
        """Add in calls of at most ``max_batch`` vectors. All of a write's calls come before the store's commit
        (index/index.py step 2), so a writer killed between two of them leaves only leftovers of pending
        documents, which the next writer removes; ids that exist are skipped by the caller, so a retry adds
        only what is missing."""
        nodes = list(chunk_nodes)
        with reachable():
            for i in range(0, len(nodes), self.max_batch):
                self.chunks.add(nodes[i : i + self.max_batch])

    def versions(self, doc_ids: list[str] | None = None) -> dict[str, tuple[str, str | None]]:
        """(doc_id, version) of every vector of these documents (of all, when None), by vector id;
        vectors from before versions were kept have None."""
        where = cast(Where, {"doc_id": {"$in": list(doc_ids)}}) if doc_ids is not None else None
        if doc_ids is not None and not doc_ids:
            return {}
        with reachable():
            found = self.chunk_collection.get(where=where, include=["metadatas"])
        return {i: (str(m["doc_id"]), cast(str | None, m.get("version")))
                for i, m in zip(found["ids"], found["metadatas"] or [], strict=True)}

    def delete_ids(self, ids: list[str]) -> None:
        with reachable():
            for i in range(0, len(ids), self.max_batch):
                self.chunk_collection.delete(ids=ids[i : i + self.max_batch])

    def remove_leftovers(self, doc_ids: list[str], live: dict[str, str]) -> int:
        """Delete these documents' vectors of any version but the live one (all of them for documents
        not in ``live``); returns how many went."""
        stale = [i for i, (doc_id, version) in self.versions(doc_ids).items() if live.get(doc_id) != version]
        self.delete_ids(stale)
        return len(stale)

    def query_chunks(self, embedding: np.ndarray, k: int,
                     filters: MetadataFilters | None = None) -> list[tuple[str, int, str | None, float]]:
        """(doc_id, chunk, version, cosine) of the ``k`` nearest chunk vectors (among those ``filters``
        allow: index/filters.py), whatever their version: the caller keeps those of live versions.
        Asked of the collection itself for distances only, the rest read from the vector ids: fetching
        the neighbours' metadata from Chroma's SQLite costs more than the search (at 76k chunks, 31 ms
        against 3 ms for 50 neighbours, 336 ms against 10 ms for 1,000), and llama-index nodes more still."""
        with reachable():
            count = self.chunk_collection.count()
            if count == 0:
                return []
            where = cast(Where, _to_chroma_filter(filters)) if filters is not None else None
            found = self.chunk_collection.query(query_embeddings=[embedding.tolist()], n_results=min(k, count),
                                                where=where, include=["distances"])
        # Cosine space: distance = 1 - cosine.
        return [(*parse_vector_id(i), 1.0 - float(d))
                for i, d in zip(found["ids"][0], (found["distances"] or [[]])[0], strict=True)]

    def chunk_vectors(self, ids: list[str]) -> dict[str, np.ndarray]:
        return _stored_vectors(self.chunk_collection, ids)


def _stored_vectors(collection: chromadb.Collection, ids: list[str]) -> dict[str, np.ndarray]:
    """Stored embeddings by id (ids that no longer exist are simply absent)."""
    if not ids:
        return {}
    with reachable():
        found = collection.get(ids=ids, include=["embeddings"])
    embeddings = found["embeddings"] if found["embeddings"] is not None else []
    return {i: np.asarray(e, dtype=np.float32) for i, e in zip(found["ids"], embeddings, strict=True)}


def chunk_id(doc_id: str, chunk: int) -> str:
    """A chunk's public name (llama-index node ids)."""
    return f"{doc_id}#c{chunk}"


def vector_id(doc_id: str, chunk: int, version: str) -> str:
    """The Chroma id of one version of a chunk's vector."""
    return f"{chunk_id(doc_id, chunk)}@{version}"


def parse_vector_id(vid: str) -> tuple[str, int, str]:
    """(doc_id, chunk, version) of a ``vector_id`` (split at the last "#c" and "@": a document id may hold
    either; a version, a hex digest, holds neither)."""
    name, version = vid.rsplit("@", 1)
    doc_id, chunk = name.rsplit("#c", 1)
    return doc_id, int(chunk), version

