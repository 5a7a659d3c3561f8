"""Answers composed from source sentences, no generative model.

The answer is 1-3 sentences copied from the articles, each followed by its ``[n]`` marker, so every
citation is exact by construction: its ``sentence`` is ``text[start:end]`` of the cited document.
Sentences are chosen by a sentence-level scorer (the sentence's own dense similarity to the question,
its idf-weighted term overlap, and its chunk's fused score), not by taking a chunk's first sentence.
When the evidence is weak the answer is an explicit refusal with no citations.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from index.filters import DocumentFilter
from index.index import Index
from index.lexical import content_terms, tokenize
from index.store import SentenceRef
from rag.answer_types import offers_answer, question_type
from rag.generated import Generated
from rag.params import ScoringParams
from rag.reader import Reader, Reading
from rag.retriever import Candidates, minmax

REFUSAL_ID = "Maaf, jawabannya tidak ditemukan di korpus."
REFUSAL_EN = "Sorry, the answer was not found in the corpus."


@dataclass
class Citation:
    n: int
    doc_id: str
    title: str
    sentence: str
    start: int
    end: int
    score: float
    date: str | None = None
    sentence_index: int = 0
    source: str | None = None  # the article's publisher and URL, when it has them
    url: str | None = None


@dataclass
class ShortAnswer:
    """The reader's answer span: ``document.text[start:end] == text``, inside the first citation."""

    text: str
    doc_id: str
    start: int
    end: int


@dataclass
class Answer:
    question: str
    answer: str
    abstained: bool
    citations: list[Citation] = field(default_factory=list)
    confidence: float = 0.0
    short_answer: ShortAnswer | None = None
    # The filter the question was asked under, with how many documents it allows
    # (index/filters.py ``DocumentFilter.to_json``); None without one.
    filter: dict | None = None
    # The LLM's answer over the citations, checked sentence by sentence (rag/generated.py); None when no
    # LLM is configured or the answer is a refusal.
    generated: Generated | None = None

    def to_json(self) -> dict:
        return {"question": self.question, "answer": self.answer, "abstained": self.abstained,
                "confidence": round(self.confidence, 4), "citations": [asdict(c) for c in self.citations],
                "short_answer": asdict(self.short_answer) if self.short_answer else None, "filter": self.filter,
                "generated": self.generated.to_json() if self.generated else None}


def no_documents_answer(question: str, lang: str, doc_filter: DocumentFilter, sources: list[tuple[str, int]]) -> Answer:
    """What a question under a filter that allows no document gets: that, rather than a refusal, and the
    publishers there are when the filter named some."""
    what = doc_filter.describe(lang)
    if lang == "en":
        text = f"No document in the corpus matches the filter ({what})."
        known = "Publishers in the corpus: "
    else:
        text = f"Tidak ada dokumen di korpus yang cocok dengan filter ({what})."
        known = "Penerbit di korpus: "
    if doc_filter.sources:
        names = ", ".join(f"{name} ({n})" for name, n in sources[:12]) or "-"
        text += f" {known}{names}{', ...' if len(sources) > 12 else ''}."
    return Answer(question, text, True, filter=doc_filter.to_json(0))


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

    def scores(self, params: ScoringParams) -> np.ndarray:
        return (params.sentence_dense * minmax(self.dense) + params.sentence_lexical * self.lexical
                + params.sentence_chunk * self.chunk_score + params.sentence_answer_type * self.answer_type)


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
    texts = [index.store.text(r.doc_id)[r.start : r.end] for r in refs]
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
    scores = ev.scores(params)
    top = [int(i) for i in np.argsort(-scores, kind="stable")[: params.reader_sentences]]
    texts = [index.store.text(ev.refs[i].doc_id)[ev.refs[i].start : ev.refs[i].end] for i in top]
    return ReaderEvidence(top, reader.read(cands.query, texts))


def reader_choice(ev: SentenceEvidence, rev: ReaderEvidence, params: ScoringParams, retrieval_confidence: float
                  ) -> tuple[int, float]:
    """Position in ``rev.top`` of the sentence to cite first (the reader's answerable logit plus the
    retrieval score, weighted), and P(answerable) from the reader's and the retrieval's evidence."""
    scores = ev.scores(params)
    combined = [-np.inf if r is None else r.answerable + params.reader_retrieval_weight * float(scores[i])
                for i, r in zip(rev.top, rev.readings, strict=True)]
    best = int(np.argmax(combined))
    reading = rev.readings[best]
    if reading is None:
        return best, 0.0
    return best, reader_probability(reader_features(reading, retrieval_confidence), params)


def reader_features(reading: Reading, retrieval_confidence: float) -> np.ndarray:
    """The reader's answerable logit and span margin, and the retrieval refusal model's logit."""
    p = min(max(retrieval_confidence, 1e-6), 1 - 1e-6)
    return np.array([reading.answerable, reading.span_margin, math.log(p / (1 - p))], dtype=np.float64)


def reader_probability(features: np.ndarray, params: ScoringParams) -> float:
    return logistic(float(np.dot(params.reader_refusal_weights, features) + params.reader_refusal_bias))


def compose(index: Index, question: str, cands: Candidates, params: ScoringParams, max_citations: int = 3,
            reader: Reader | None = None) -> Answer:
    refusal = REFUSAL_EN if cands.lang == "en" else REFUSAL_ID
    ev = gather_sentences(index, cands, params)
    if ev is None:
        return Answer(question, refusal, True)
    confidence = answerable_probability(refusal_features(cands, ev), params)
    if reader is not None:
        return compose_read(index, question, cands, ev, params, max_citations, reader, confidence)
    if confidence < params.refusal_threshold:
        return Answer(question, refusal, True, confidence=confidence)
    picked = choose_sentences(ev, params, limit=max_citations)
    return cite(index, question, ev, picked, confidence)


def compose_read(index: Index, question: str, cands: Candidates, ev: SentenceEvidence, params: ScoringParams,
                 max_citations: int, reader: Reader, retrieval_confidence: float) -> Answer:
    """The reader's answer: its sentence cited first with the short answer inside it, then the
    scorer's other picks from the same article; a refusal when P(answerable) is under the threshold."""
    rev = read_evidence(index, reader, cands, ev, params)
    best, confidence = reader_choice(ev, rev, params, retrieval_confidence)
    reading = rev.readings[best]
    if reading is None or confidence < params.reader_refusal_threshold:
        return Answer(question, REFUSAL_EN if cands.lang == "en" else REFUSAL_ID, True, confidence=confidence)
    first = rev.top[best]
    ref = ev.refs[first]
    others = [(i, score) for i, score in choose_sentences(ev, params, limit=max_citations)
              if i != first and ev.refs[i].doc_id == ref.doc_id]
    answer = cite(index, question, ev, [(first, float(ev.scores(params)[first])), *others][:max_citations],
                  confidence)
    if reading.end > reading.start:
        start, end = ref.start + reading.start, ref.start + reading.end
        answer.short_answer = ShortAnswer(index.store.text(ref.doc_id)[start:end], ref.doc_id, start, end)
    return answer


def cite(index: Index, question: str, ev: SentenceEvidence, picked: list[tuple[int, float]], confidence: float
         ) -> Answer:
    titles = index.store.titles({ev.refs[i].doc_id for i, _ in picked})
    citations = []
    for n, (i, score) in enumerate(picked, start=1):
        ref = ev.refs[i]
        title, date, source, url = titles[ref.doc_id]
        sentence = index.store.text(ref.doc_id)[ref.start : ref.end]
        citations.append(Citation(n, ref.doc_id, title, sentence, ref.start, ref.end, round(score, 4), date,
                                  ref.idx, source, url))
    text = " ".join(f"{c.sentence} [{c.n}]" for c in citations)
    return Answer(question, text, False, citations, confidence)
