"""Hybrid retrieval: dense chunk vectors (Chroma) + Indonesian BM25, fused by weighted score fusion.

Why not reciprocal-rank fusion (or llama-index's QueryFusionRetriever)? On FacQA, RRF loses to BM25
alone at rank 1: ranks throw away how far ahead the best chunk is. We normalise both scores per
question and mix them with a weight that depends on the question's language (BM25 cannot match an
English question against Indonesian text). Every candidate gets BOTH of its real scores, not a zero
for "missing from the other list". ``eval/README.md`` has the measurements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from index.bm25 import ChunkKey
from index.embedder import embed_query
from index.filters import DocumentFilter
from index.index import Index
from index.lexical import content_terms, language
from index.vectors import chunk_id, vector_id
from rag.background import background_level
from rag.params import Params, ScoringParams

CANDIDATES_PER_SIDE = 50
# Unfiltered neighbours worth fetching to keep a filter's allowed ones, rather than a filtered search
# (at 76k chunks 2,000 neighbours take ~18 ms without their metadata; a filtered search, 100+ ms): a
# filter that allows 5% of the documents or more is post-filtered.
MAX_POST_FILTERED = 2000


@dataclass
class Candidates:
    """Everything retrieval knows about one query, before any tunable weight is applied."""

    query: str
    query_vec: np.ndarray
    lang: str  # "id" or "en": picks the parameter set
    keys: list[ChunkKey]
    dense: np.ndarray  # cosine of each candidate chunk
    bm25: np.ndarray  # BM25 score of each candidate chunk
    background: float  # the question's mean cosine to generic news (rag/background.py)
    focus: str = ""  # the question itself when `query` also carries a follow-up's context

    def __post_init__(self) -> None:
        self.focus = self.focus or self.query

    @classmethod
    def none(cls, query: str, lang: str) -> Candidates:
        """No candidate at all (a filter that allows no document)."""
        return cls(query, np.zeros(0, dtype=np.float32), lang, [], np.zeros(0), np.zeros(0), 0.0)

    def without_doc(self, doc_id: str) -> Candidates:
        """The same query as if ``doc_id`` were not in the corpus (for refusal calibration)."""
        keep = [i for i, k in enumerate(self.keys) if k[0] != doc_id]
        return Candidates(self.query, self.query_vec, self.lang, [self.keys[i] for i in keep],
                          self.dense[keep], self.bm25[keep], self.background, self.focus)

    def fused(self, params: ScoringParams) -> np.ndarray:
        if not self.keys:
            return np.zeros(0)
        return (1 - params.bm25_weight) * minmax(self.dense) + params.bm25_weight * scale_to_max(self.bm25)


def minmax(values: np.ndarray) -> np.ndarray:
    if values.size == 0:
        return values
    low, high = float(values.min()), float(values.max())
    return (values - low) / (high - low) if high > low else np.ones_like(values)


def scale_to_max(values: np.ndarray) -> np.ndarray:
    top = float(values.max()) if values.size else 0.0
    return values / top if top > 0 else np.zeros_like(values)


@dataclass(frozen=True)
class Scope:
    """A filter (index/filters.py) and the documents it allows, looked up once per question."""

    filter: DocumentFilter
    doc_ids: frozenset[str]
    share: float = 1.0  # of all documents: how broad the filter is

    @classmethod
    def of(cls, index: Index, doc_filter: DocumentFilter) -> Scope:
        allowed = frozenset(index.store.allowed_documents(doc_filter))
        return cls(doc_filter, allowed, len(allowed) / max(1, index.store.document_count()))


def collect_candidates(index: Index, query: str, per_side: int = CANDIDATES_PER_SIDE, focus: str = "",
                       scope: Scope | None = None) -> Candidates:
    """The best chunks of each side for ``query`` (of the documents ``scope`` allows, when given)."""
    lang = language(query)
    query_vec = embed_query(index.embedder, query)
    if scope is not None and not scope.doc_ids:
        return Candidates(query, query_vec, lang, [], np.zeros(0), np.zeros(0), 0.0, focus)
    dense_hits, live = live_nearest(index, query_vec, per_side, scope)
    # English: names, numbers and the lexicon's Indonesian words (index/lexical.py)
    bm25_hits = index.bm25.search(content_terms(query, lang), per_side, also=list(dense_hits),
                                  only=scope.doc_ids if scope else None)
    keys = list(dense_hits) + [k for k in bm25_hits if k not in dense_hits]
    missing = [k for k in keys if k not in dense_hits]
    live.update(index.store.versions({d for d, _ in missing} - live.keys()))
    wanted = {vector_id(d, c, live[d]): (d, c) for d, c in missing if d in live}
    for vid, vec in index.vectors.chunk_vectors(list(wanted)).items():
        dense_hits[wanted[vid]] = float(vec @ query_vec)
    keys = [k for k in keys if k in dense_hits]  # a chunk deleted between the two lookups drops out
    bm25 = np.array([bm25_hits.get(k, 0.0) for k in keys], dtype=np.float32)
    dense = np.array([dense_hits[k] for k in keys], dtype=np.float32)
    background = background_level(index.embedder, query_vec)
    return Candidates(query, query_vec, lang, keys, dense, bm25, background, focus)


def live_nearest(index: Index, query_vec: np.ndarray, k: int,
                 scope: Scope | None = None) -> tuple[dict[ChunkKey, float], dict[str, str]]:
    """The ``k`` nearest chunks (of the documents ``scope`` allows) whose vectors are of the version the
    store holds (others are a writer's new or old ones: index/index.py), and the versions looked up. While
    a write is under way, or after a killed one, other versions take places among the nearest: ask for
    more until ``k`` are live.

    Under a broad filter the unfiltered neighbours are asked for and the allowed ones kept: Chroma's
    filtered search scans every chunk the filter allows (benchmarks/README.md, "Filters"), so a filter
    that allows half of a large index costs more than fetching a few hundred neighbours. When fewer than
    ``k`` allowed chunks are among them, the filtered search finds the rest; either way the result is the
    ``k`` nearest allowed chunks."""
    filters = scope.filter.vector_filters() if scope is not None else None
    allowed: frozenset[str] | None = None
    asked = k
    if scope is not None and scope.share * MAX_POST_FILTERED >= 2 * k:
        allowed, filters = scope.doc_ids, None
        asked = min(MAX_POST_FILTERED, math.ceil(2 * k / scope.share))
    while True:
        nearest = index.vectors.query_chunks(query_vec, asked, filters)
        exhausted = len(nearest) < asked
        if allowed is not None:
            nearest = [n for n in nearest if n[0] in allowed]
        live = index.store.versions({d for d, _, _, _ in nearest})
        hits = {(d, c): cos for d, c, version, cos in nearest if version is not None and live.get(d) == version}
        if allowed is not None and len(hits) < k and not exhausted and scope is not None:
            allowed, filters, asked = None, scope.filter.vector_filters(), k  # a narrower filter than it looked
            continue
        if len(hits) >= k or exhausted or asked >= 8 * k:
            return dict(list(hits.items())[:k]), live
        asked *= 2


@dataclass
class RetrievedChunk:
    rank: int
    doc_id: str
    chunk: int
    start: int
    end: int
    text: str
    score: float
    dense: float
    bm25: float


def rank_chunks(index: Index, cands: Candidates, params: ScoringParams, k: int) -> list[RetrievedChunk]:
    fused = cands.fused(params)
    order = np.argsort(-fused, kind="stable")[:k]
    out = []
    for rank, i in enumerate(order, start=1):
        doc_id, chunk = cands.keys[i]
        start, end = index.store.chunk_span(doc_id, chunk)
        out.append(RetrievedChunk(rank, doc_id, chunk, start, end, index.store.text(doc_id)[start:end],
                                  round(float(fused[i]), 4), round(float(cands.dense[i]), 4),
                                  round(float(cands.bm25[i]), 4)))
    return out


class TanyaRetriever(BaseRetriever):
    """A llama-index retriever over a Tanya index: nodes are chunks whose metadata carry the doc id
    and exact character offsets (``text[start:end] == node.text``), scores are the fused scores."""

    def __init__(self, index: Index, params: Params | None = None, similarity_top_k: int = 10,
                 doc_filter: DocumentFilter | None = None) -> None:
        super().__init__()
        self._index = index
        self._params = params or Params.load()
        self._k = similarity_top_k
        self._filter = doc_filter

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        with self._index.store.snapshot():  # offsets and texts from one committed state
            scope = Scope.of(self._index, self._filter) if self._filter else None
            cands = collect_candidates(self._index, query_bundle.query_str, scope=scope)
            ranked = rank_chunks(self._index, cands, self._params.for_language(cands.lang), self._k)
        return [NodeWithScore(node=TextNode(id_=chunk_id(c.doc_id, c.chunk), text=c.text,
                                            start_char_idx=c.start, end_char_idx=c.end,
                                            metadata={"doc_id": c.doc_id, "chunk": c.chunk, "start": c.start,
                                                      "end": c.end, "dense": c.dense, "bm25": c.bm25}),
                              score=c.score)
                for c in ranked]
