"""The evidence stages of the answer pipeline (rag/pipeline.py runs them in order):

- gather: the candidate sentences of the best chunks, with their raw signals (``SentenceEvidence``);
- the retrieval refusal model over evidence strength (``refusal_features``, ``answerable_probability``);
- choose: the sentences to cite without a reader (``choose_sentences``);
- read: what the reader finds in the best sentences (``read_evidence``), and the reader's choice and
  refusal model (``reader_choice``).

Sentences are scored by the sentence's own dense similarity to the question, its idf-weighted term
overlap, its article's fused chunk score and whether it offers the kind of answer asked for; the
weights are per language (rag/params.py, fitted by eval/calibrate.py and eval/calibrate_reader.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from index.index import Index
from index.lexical import content_terms, tokenize
from index.store import SentenceRef
from rag.params import ScoringParams
from rag.question_types import offers_answer, question_type
from rag.reader.inference import Reader, Reading
from rag.retriever import Candidates, minmax


@dataclass
class SentenceEvidence:
    """Candidate sentences from the best chunks, with their raw signals."""

    refs: list[SentenceRef]
    dense: np.ndarray
    lexical: np.ndarray
    chunk_score: np.ndarray
    answer_type: np.ndarray  # 1.0 where the sentence offers the kind of answer the question wants
    has_answer_type: bool  # the question asks for a name, date, number or place
    top_chunk_dense: float
    top_chunk_lexical: float
    novelty: np.ndarray | None = None  # share of the sentence's terms the question does not contain
    context_lexical: np.ndarray | None = None  # coverage of the whole context (a follow-up + its history)
    _last_scores: tuple[tuple[float, ...], np.ndarray] | None = field(default=None, init=False, repr=False,
                                                                      compare=False)

    def scores(self, params: ScoringParams) -> np.ndarray:
        """Each sentence's retrieval score under ``params`` (every stage asks; computed once per weights)."""
        weights = (params.sentence_dense, params.sentence_lexical, params.sentence_chunk, params.sentence_answer_type)
        if self._last_scores is None or self._last_scores[0] != weights:  # only the last: calibration tries many
            self._last_scores = (weights, weights[0] * minmax(self.dense) + weights[1] * self.lexical
                                 + weights[2] * self.chunk_score + weights[3] * self.answer_type)
        return self._last_scores[1]


def lexical_coverage(weights: dict[str, float], present: set[str]) -> float:
    """Share of the question's idf mass whose terms are among ``present`` (a text's tokens), 0..1."""
    total = sum(weights.values())
    if total <= 0:
        return 0.0
    return sum(w for t, w in weights.items() if t in present) / total


def gather_sentences(index: Index, cands: Candidates, params: ScoringParams) -> SentenceEvidence | None:
    if not cands.keys:
        return None
    fused = cands.fused(params)
    order = np.argsort(-fused, kind="stable")[: params.chunks_for_sentences]
    # A sentence's context score is its article's best chunk score, not its own chunk's: chunk borders
    # are arbitrary (700 characters), and the answer is often a chunk away from the question's terms.
    article_score: dict[str, float] = {}
    for key, score in zip(cands.keys, fused, strict=True):
        article_score[key[0]] = max(article_score.get(key[0], 0.0), float(score))
    refs = index.store.sentences_of_chunks([cands.keys[i] for i in order])
    vectors = index.store.sentence_vectors(refs)
    refs = [r for r in refs if (r.doc_id, r.idx) in vectors]
    if not refs:
        return None
    # Retrieval used the whole context (a follow-up carries the previous question); what a sentence
    # must offer comes from the question itself, while the chunk must cover the whole context.
    weights = {t: index.bm25.idf(t) for t in set(content_terms(cands.focus, cands.lang))}
    context_weights = {t: index.bm25.idf(t) for t in set(content_terms(cands.query, cands.lang))}
    texts = [index.store.sentence_text(r) for r in refs]
    token_sets = [set(tokenize(t)) for t in texts]  # once per sentence: coverage and novelty both use them
    kind = question_type(cands.focus)
    top = cands.keys[order[0]]
    top_start, top_end = index.store.chunk_span(*top)
    return SentenceEvidence(
        refs=refs,
        dense=np.array([vectors[(r.doc_id, r.idx)] @ cands.query_vec for r in refs], dtype=np.float32),
        lexical=np.array([lexical_coverage(weights, terms) for terms in token_sets], dtype=np.float32),
        chunk_score=np.array([article_score[r.doc_id] for r in refs], dtype=np.float32),
        answer_type=np.array([offers_answer(kind, t, cands.focus) for t in texts], dtype=np.float32),
        has_answer_type=kind is not None,
        top_chunk_dense=float(cands.dense[order[0]]),
        top_chunk_lexical=lexical_coverage(context_weights,
                                           set(tokenize(index.store.text(top[0])[top_start:top_end]))),
        novelty=np.array([novelty(terms, set(weights) | set(context_weights)) for terms in token_sets],
                         dtype=np.float32),
        context_lexical=np.array([lexical_coverage(context_weights, terms) for terms in token_sets],
                                 dtype=np.float32)
        if cands.query != cands.focus else None,
    )


def novelty(terms: set[str], question_terms: set[str]) -> float:
    """Share of a sentence's terms that the question does not contain."""
    return len(terms - question_terms) / len(terms) if terms else 0.0


REFUSAL_FEATURES = ("top_chunk_dense", "best_sentence_dense", "top_chunk_coverage", "best_sentence_coverage",
                    "sentence_dense_margin", "answer_type_found", "top_chunk_over_background",
                    "best_sentence_over_background")


def refusal_features(cands: Candidates, ev: SentenceEvidence) -> np.ndarray:
    """Evidence strength (see REFUSAL_FEATURES): raw cosines, the share of the question's idf mass
    found in the best chunk and sentence, how far the best stands out from the rest, and whether any
    candidate sentence offers the kind of answer the question asks for, and the cosines again measured
    from the question's own background level. Nothing here grows or shrinks with the size of the
    corpus (a margin over the whole candidate pool would)."""
    best = float(ev.dense.max())
    # A follow-up ("Apa pangkatnya?") is judged on the conversation's terms too: its own words alone
    # rarely occur in the article ("pangkat" does not; "Kolonel" does).
    coverage = float(ev.lexical.max())
    if ev.context_lexical is not None:
        coverage = max(coverage, float(ev.context_lexical.max()))
    return np.array([ev.top_chunk_dense, best, ev.top_chunk_lexical, coverage,
                     best - float(ev.dense.mean()), float(ev.answer_type.max()) if ev.has_answer_type else 1.0,
                     ev.top_chunk_dense - cands.background, best - cands.background], dtype=np.float64)


def logistic(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))  # clipped: exp would overflow past ~700


def answerable_probability(features: np.ndarray, params: ScoringParams) -> float:
    return logistic(float(np.dot(params.refusal_weights, features) + params.refusal_bias))


# A best sentence with less new material than this only restates the question ("... akan dimulai
# Selasa."): the answer is in the sentence after it ("Tapi pelanggaran ... menghentikan rencana itu.").
RESTATES_QUESTION = 0.2


def choose_sentences(ev: SentenceEvidence, params: ScoringParams, limit: int = 3) -> list[tuple[int, float]]:
    """Indexes into ``ev.refs`` of the best sentence plus near-ties, in reading order; the next sentence
    too when the best one only restates the question."""
    scores = ev.scores(params)
    best = int(np.argmax(scores))
    chosen = [best] + [i for i in np.argsort(-scores, kind="stable")[1:limit]
                       if scores[i] >= scores[best] - params.extra_sentence_margin]
    if limit >= 2 and ev.novelty is not None and ev.novelty[best] < RESTATES_QUESTION:
        ref = ev.refs[best]
        following = [i for i, r in enumerate(ev.refs) if r.doc_id == ref.doc_id and r.idx == ref.idx + 1]
        if following and following[0] not in chosen:
            chosen = [*chosen[: limit - 1], following[0]]
    chosen.sort(key=lambda i: (ev.refs[i].doc_id != ev.refs[best].doc_id, ev.refs[i].doc_id, ev.refs[i].idx))
    return [(int(i), float(scores[i])) for i in chosen]


@dataclass
class ReaderEvidence:
    """What the reader found in the best candidate sentences (``top``: indexes into the evidence)."""

    top: list[int]
    readings: list[Reading | None]


def read_evidence(index: Index, reader: Reader, cands: Candidates, ev: SentenceEvidence, params: ScoringParams
                  ) -> ReaderEvidence:
    """The reader over the ``reader_sentences`` best sentences by the retrieval scorer, one sentence
    per input: short inputs keep it fast (~0.25 ms per token on two cores), and the span it finds is
    inside the sentence that will be cited. The question carries a follow-up's context."""
    top = sentences_to_read(ev, params)
    return ReaderEvidence(top, reader.read(cands.query, [index.store.sentence_text(ev.refs[i]) for i in top]))


def sentences_to_read(ev: SentenceEvidence, params: ScoringParams) -> list[int]:
    """Indexes into ``ev.refs`` of the sentences the reader reads: the retrieval scorer's best
    ``reader_sentences``, best first. The reader's training data is mined through this very function."""
    return [int(i) for i in np.argsort(-ev.scores(params), kind="stable")[: params.reader_sentences]]


def reader_choice(ev: SentenceEvidence, rev: ReaderEvidence, params: ScoringParams, retrieval_confidence: float
                  ) -> tuple[int, float]:
    """Position in ``rev.top`` of the sentence to cite first (the reader's answerable logit plus the
    retrieval score, weighted), and P(answerable) from the reader's and the retrieval's evidence."""
    scores = ev.scores(params)
    return choose_reading(rev.readings, [float(scores[i]) for i in rev.top], params, retrieval_confidence)


def choose_reading(readings: Sequence[Reading | None], retrieval_scores: Sequence[float], params: ScoringParams,
                   retrieval_confidence: float) -> tuple[int, float]:
    """``reader_choice`` over the readings of the sentences read and their retrieval scores (what a trace
    keeps: eval/reader_bench.py decides through this too)."""
    combined = [-np.inf if r is None else r.answerable + params.reader_retrieval_weight * score
                for r, score in zip(readings, retrieval_scores, strict=True)]
    best = int(np.argmax(combined))
    reading = readings[best]
    if reading is None:
        return best, 0.0
    return best, reader_probability(reader_features(reading, retrieval_confidence), params)


def reader_features(reading: Reading, retrieval_confidence: float) -> np.ndarray:
    """The reader's answerable logit and span margin, and the retrieval refusal model's logit."""
    p = min(max(retrieval_confidence, 1e-6), 1 - 1e-6)
    return np.array([reading.answerable, reading.span_margin, math.log(p / (1 - p))], dtype=np.float64)


def reader_probability(features: np.ndarray, params: ScoringParams) -> float:
    return logistic(float(np.dot(params.reader_refusal_weights, features) + params.reader_refusal_bias))
