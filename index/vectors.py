"""Chroma access: an embedded PersistentClient in the data home, or a ``chroma run`` server.

One collection of chunk vectors (dense retrieval), written through llama-index's ChromaVectorStore
and created with ``embedding_function=None``: Chroma's default one downloads a model. Sentence
vectors live in the document store (index/store.py says why); homes from before keep them in a
``tanya_sentences`` collection until ``take_legacy_sentence_vectors`` moves them.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from typing import cast
from urllib.parse import urlparse

import chromadb
import httpx
import numpy as np
from chromadb.api.types import Where
from chromadb.config import Settings as ChromaSettings
from llama_index.core.schema import BaseNode, NodeRelationship, RelatedNodeInfo, TextNode
from llama_index.core.vector_stores.types import VectorStoreQuery
from llama_index.vector_stores.chroma import ChromaVectorStore

from index.home import DataHome

CHUNKS = "tanya_chunks"
SENTENCES = "tanya_sentences"


class StoreUnavailable(RuntimeError):
    """The vector store cannot be reached (e.g. the Chroma server is down)."""


@contextmanager
def reachable() -> Iterator[None]:
    """Turn a lost connection to a Chroma server into StoreUnavailable (a 503, a one-line CLI error);
    the next call simply tries again, so a server that comes back needs no restart."""
    try:
        yield
    except httpx.TransportError as exc:
        raise StoreUnavailable(f"the Chroma server cannot be reached ({exc}); is it running?") from None


def connect(home: DataHome) -> chromadb.ClientAPI:
    settings = ChromaSettings(anonymized_telemetry=False, allow_reset=False)
    if not home.chroma_url:
        home.chroma_dir.mkdir(parents=True, exist_ok=True)
        return chromadb.PersistentClient(path=str(home.chroma_dir), settings=settings)
    url = urlparse(home.chroma_url if "://" in home.chroma_url else f"http://{home.chroma_url}")
    try:
        return chromadb.HttpClient(host=url.hostname or "127.0.0.1", port=url.port or 8000,
                                   ssl=url.scheme == "https", settings=settings)
    except Exception as exc:  # chromadb raises plain exceptions for connection failures
        raise StoreUnavailable(f"cannot reach the Chroma server at {home.chroma_url}: {exc}") from None


def vector_node(node_id: str, doc_id: str, text: str, embedding: np.ndarray, **meta: int) -> TextNode:
    node = TextNode(id_=node_id, text=text, embedding=embedding.tolist(), metadata={"doc_id": doc_id, **meta},
                    excluded_embed_metadata_keys=list(meta), excluded_llm_metadata_keys=list(meta))
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
        except Exception as exc:
            raise StoreUnavailable(f"the vector store is unavailable: {exc}") from None
        self.chunks = ChromaVectorStore(chroma_collection=self.chunk_collection)

    def replace_documents(self, doc_ids: list[str], chunk_nodes: list[BaseNode]) -> None:
        """Drop whatever vectors these documents had (also those an interrupted run left behind),
        then add theirs: one call each per batch, not per document."""
        where = cast(Where, {"doc_id": {"$in": list(doc_ids)}})
        with reachable():
            self.chunk_collection.delete(where=where)
            self.chunks.add(chunk_nodes)

    def delete_document(self, doc_id: str) -> None:
        with reachable():
            self.chunks.delete(doc_id)

    def take_legacy_sentence_vectors(self, batch: int = 5000) -> Iterator[list[tuple[str, int, np.ndarray]]]:
        """Batches of (doc_id, sentence idx, vector) from an older home's sentence collection, which is
        deleted once all were yielded (the caller stores each batch before asking for the next)."""
        with reachable():
            if SENTENCES not in {c.name for c in self.client.list_collections()}:
                return
            legacy = self.client.get_collection(SENTENCES, embedding_function=None)
            for offset in range(0, legacy.count(), batch):
                found = legacy.get(include=["embeddings", "metadatas"], limit=batch, offset=offset)
                yield [(str(m["doc_id"]), int(m["sentence"]), np.asarray(e, dtype=np.float32))  # type: ignore[arg-type]
                       for m, e in zip(found["metadatas"] or [], found["embeddings"], strict=True)]  # type: ignore[arg-type]
            self.client.delete_collection(SENTENCES)

    def document_ids(self) -> set[str]:
        """Every doc id that has chunk vectors (for consistency checks)."""
        with reachable():
            found = self.chunk_collection.get(include=["metadatas"])
        return {str(m["doc_id"]) for m in found["metadatas"] or []}

    def query_chunks(self, embedding: np.ndarray, k: int) -> list[tuple[str, int, float]]:
        """(doc_id, chunk, cosine) of the ``k`` nearest chunks."""
        with reachable():
            count = self.chunk_collection.count()
            if count == 0:
                return []
            result = self.chunks.query(VectorStoreQuery(query_embedding=embedding.tolist(),
                                                        similarity_top_k=min(k, count)))
        # ChromaVectorStore reports exp(-distance); with cosine space, distance = 1 - cosine.
        return [(str(n.metadata["doc_id"]), int(n.metadata["chunk"]), 1.0 + math.log(s))
                for n, s in zip(result.nodes or [], result.similarities or [], strict=True)]

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
    return f"{doc_id}#c{chunk}"

