"""The answer pipeline, one question at a time, in five stages:

    retrieve  rag/retriever.py  collect_candidates: the best chunks by BM25 and dense vectors
    gather    rag/evidence.py   gather_sentences: their sentences, with the signals each offers
    read      rag/evidence.py   sentences_to_read, then the reader over them (when there is one)
    decide    rag/evidence.py   answer or refuse (a logistic model over the evidence), which sentences
    compose   here              cite: the answer, every citation ``text[start:end]`` of its document

``Pipeline.run`` runs them and keeps what each stage saw and decided in a ``Trace``. Everything that
needs the pipeline's intermediate results reads them from there: ``tanya ask --trace`` and
``Tanya.ask_traced``, ``tanya eval`` (retrieval ranks of the very candidates that were answered from)
and the reader's training data (eval/reader_data.py mines the sentences a trace says were read).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from index.index import Index
from rag.answer import Answer, Citation, ShortAnswer, refusal
from rag.evidence import (
    REFUSAL_FEATURES,
    ReaderEvidence,
    SentenceEvidence,
    answerable_probability,
    choose_sentences,
    gather_sentences,
    reader_choice,
    reader_features,
    refusal_features,
    sentences_to_read,
)
from rag.params import Params
from rag.reader.inference import Reader
from rag.retriever import Candidates, Scope, collect_candidates

TRACED_CHUNKS = 10  # candidates a trace's JSON lists (the trace itself keeps them all)


@dataclass
class Trace:
    """One question through the pipeline. Indexes (``read``, ``cited``) point into ``evidence.refs``."""

    question: str
    candidates: Candidates
    evidence: SentenceEvidence | None = None  # None: no candidate sentence at all
    retrieval_features: np.ndarray | None = None  # REFUSAL_FEATURES
    retrieval_confidence: float = 0.0  # P(answerable) from retrieval alone
    read: list[int] = field(default_factory=list)  # the sentences the reader reads (or would, without one)
    read_texts: list[str] = field(default_factory=list)
    reader: ReaderEvidence | None = None  # None when answered without the reader
    reader_features: np.ndarray | None = None  # rag.evidence.reader_features of the reader's choice
    cited: list[tuple[int, float]] = field(default_factory=list)  # with each sentence's retrieval score
    answer: Answer = field(default_factory=lambda: Answer("", "", True))

    def to_json(self, params: Params) -> dict:
        """What each stage saw and decided, for people and for scripts (``tanya ask --trace``); numbers
        unrounded, so a script that decides again from them (eval/reader_bench.py) decides the same."""
        cands, ev = self.candidates, self.evidence
        scoring = params.for_language(cands.lang)
        fused = cands.fused(scoring)
        order = np.argsort(-fused, kind="stable")[:TRACED_CHUNKS]
        scores = ev.scores(scoring) if ev is not None else np.zeros(0)
        readings = dict(zip(self.reader.top, self.reader.readings, strict=True)) if self.reader else {}

        def sentence(i: int, text: str | None = None) -> dict:
            assert ev is not None
            ref = ev.refs[i]
            row: dict = {"doc_id": ref.doc_id, "sentence_index": ref.idx, "start": ref.start, "end": ref.end,
                         "retrieval_score": float(scores[i])}
            if text is not None:
                row["text"] = text
            reading = readings.get(i)
            if reading is not None:
                row["reader"] = {"answerable": reading.answerable,
                                 "span_margin": reading.span_margin,
                                 "span": [ref.start + reading.start, ref.start + reading.end]}
            return row

        return {
            "query": cands.query,
            "language": cands.lang,
            "retrieve": {"candidates": len(cands.keys), "background": cands.background,
                         "best": [{"doc_id": cands.keys[i][0], "chunk": cands.keys[i][1],
                                   "dense": float(cands.dense[i]), "bm25": float(cands.bm25[i]),
                                   "fused": float(fused[i])} for i in order]},
            "gather": {"sentences": len(ev.refs) if ev is not None else 0},
            "read": [sentence(i, text) for i, text in zip(self.read, self.read_texts, strict=True)],
            "decide": {
                "retrieval_features": dict(zip(REFUSAL_FEATURES, _floats(self.retrieval_features), strict=True))
                if self.retrieval_features is not None else None,
                "retrieval_confidence": self.retrieval_confidence,
                "reader_features": dict(zip(("answerable", "span_margin", "retrieval_logit"),
                                            _floats(self.reader_features), strict=True))
                if self.reader_features is not None else None,
                "confidence": self.answer.confidence,
                "threshold": scoring.reader_refusal_threshold if self.reader else scoring.refusal_threshold,
                "refused": self.answer.abstained,
            },
            "cited": [sentence(i) for i, _ in self.cited],
        }


def _floats(values: np.ndarray | None) -> list[float]:
    return [float(v) for v in (values if values is not None else [])]


class Pipeline:
    """The stages over one index, with the parameters and the (optional) reader they use."""

    def __init__(self, index: Index, params: Params, reader: Reader | None) -> None:
        self.index, self.params, self.reader = index, params, reader

    def run(self, question: str, query: str | None = None, max_citations: int = 3, scope: Scope | None = None,
            leave_out: str | None = None) -> Trace:
        """``question`` answered from what retrieval finds for ``query`` (the question with a
        follow-up's context; the question itself by default) among the documents ``scope`` allows.
        ``leave_out``: as if that document were not in the corpus (refusal calibration, training data)."""
        cands = collect_candidates(self.index, query or question, focus=question, scope=scope)
        if leave_out is not None:
            cands = cands.without_doc(leave_out)
        trace = Trace(question, cands)
        params = self.params.for_language(cands.lang)
        ev = trace.evidence = gather_sentences(self.index, cands, params)
        if ev is None:
            trace.answer = refusal(question, cands.lang)
            return trace
        trace.retrieval_features = refusal_features(cands, ev)
        trace.retrieval_confidence = answerable_probability(trace.retrieval_features, params)
        trace.read = sentences_to_read(ev, params)
        trace.read_texts = [self.index.store.sentence_text(ev.refs[i]) for i in trace.read]
        if self.reader is None:
            if trace.retrieval_confidence < params.refusal_threshold:
                trace.answer = refusal(question, cands.lang, trace.retrieval_confidence)
                return trace
            trace.cited = choose_sentences(ev, params, limit=max_citations)
            trace.answer = self.cite(question, ev, trace.cited, trace.retrieval_confidence)
            return trace
        # The sentences sentences_to_read chose above, read once.
        rev = trace.reader = ReaderEvidence(trace.read, self.reader.read(cands.query, trace.read_texts))
        best, confidence = reader_choice(ev, rev, params, trace.retrieval_confidence)
        reading = rev.readings[best]
        if reading is None or confidence < params.reader_refusal_threshold:
            trace.answer = refusal(question, cands.lang, confidence)
            return trace
        trace.reader_features = reader_features(reading, trace.retrieval_confidence)
        # The reader's sentence first, with the short answer inside it, then the scorer's other picks
        # from the same article.
        first = rev.top[best]
        ref = ev.refs[first]
        others = [(i, score) for i, score in choose_sentences(ev, params, limit=max_citations)
                  if i != first and ev.refs[i].doc_id == ref.doc_id]
        trace.cited = [(first, float(ev.scores(params)[first])), *others][:max_citations]
        trace.answer = self.cite(question, ev, trace.cited, confidence)
        if reading.end > reading.start:
            start, end = ref.start + reading.start, ref.start + reading.end
            trace.answer.short_answer = ShortAnswer(self.index.store.text(ref.doc_id)[start:end], ref.doc_id,
                                                    start, end)
        return trace

    def cite(self, question: str, ev: SentenceEvidence, picked: list[tuple[int, float]], confidence: float
             ) -> Answer:
        """The answer: each picked sentence quoted from its document, followed by its ``[n]`` marker."""
        store = self.index.store
        titles = store.titles({ev.refs[i].doc_id for i, _ in picked})
        citations = []
        for n, (i, score) in enumerate(picked, start=1):
            ref = ev.refs[i]
            title, date, source, url = titles[ref.doc_id]
            citations.append(Citation(n, ref.doc_id, title, store.sentence_text(ref), ref.start, ref.end,
                                      round(score, 4), date, ref.idx, source, url))
        text = " ".join(f"{c.sentence} [{c.n}]" for c in citations)
        return Answer(question, text, False, citations, confidence)
