"""Fit how the pipeline uses the reader, on data the reader was not trained on; write rag/params.json.

    python -m eval.calibrate_reader [--home DIR] [--facqa-questions N] [--write]

Two question sets, each asked through the real retrieval and the real reader:

- FacQA train (and its English translation) over every FacQA passage, each question asked as it is
  (answerable) and with its own passage removed (not in the corpus);
- the IDK-MRC train paragraphs held out of the reader's training (eval/reader_data.py), indexed
  together: answerable questions, and unanswerable ones whose on-topic paragraph is in the corpus.

Fitted, in order: how much the retrieval score adds to the reader's answerable logit when picking the
sentence to cite (best "first citation from the gold document holds the answer"), then a logistic
refusal model over ``rag.evidence.reader_features``, then the highest threshold that refuses at most 5% of
each set's answerable questions (2% in English: the retrieval-only refusal's budgets). English shares the
weights and gets its own threshold from the English FacQA questions. (A first fit that maximised the mean
of "answered correctly" and "refused" over the sets chose 0.39: FacQA valid then refused 85% of the
not-in-corpus questions but 18% of the answerable ones, and 73% of the seed set's English ones.)
The valid splits are only reported on (``tanya eval``).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from eval import facqa
from eval.calibrate import MAX_ANSWERABLE_REFUSED, fit_logistic, open_facqa
from eval.metrics import contains_answer
from eval.reader_data import calibration_examples
from eval.suite import eval_index
from index.documents import Document
from index.home import DataHome
from rag.evidence import (
    ReaderEvidence,
    SentenceEvidence,
    answerable_probability,
    gather_sentences,
    read_evidence,
    reader_choice,
    reader_features,
    refusal_features,
)
from rag.params import Params, ScoringParams
from rag.reader.inference import Reader
from rag.retriever import Candidates, collect_candidates
from rag.tanya import Tanya

READ_AT_MOST = 8  # sentences read per question here; the fit picks how many the pipeline reads
WEIGHTS = (0.0, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0)
SENTENCES = (3, 4, 5, 6, 8)


@dataclass
class Observation:
    group: str  # "facqa", "facqa-absent", "idk", "idk-unans"
    answerable: bool
    gold_doc: str | None
    answers: tuple[str, ...]
    ev: SentenceEvidence
    rev: ReaderEvidence
    texts: list[str]
    retrieval_confidence: float


def observe(tanya: Tanya, reader: Reader, cands: Candidates, params: ScoringParams, group: str,
            answerable: bool, gold_doc: str | None, answers: tuple[str, ...]) -> Observation | None:
    ev = gather_sentences(tanya.index, cands, params)
    if ev is None:
        return None
    rev = read_evidence(tanya.index, reader, cands, ev, replace(params, reader_sentences=READ_AT_MOST))
    texts = [tanya.index.store.sentence_text(r) for r in ev.refs]
    return Observation(group, answerable, gold_doc, answers, ev, rev, texts,
                       answerable_probability(refusal_features(cands, ev), params))


def first_citation_correct(ob: Observation, params: ScoringParams) -> bool:
    best, _ = choice(ob, params)
    i = ob.rev.top[best]
    return ob.ev.refs[i].doc_id == ob.gold_doc and contains_answer(ob.texts[i], ob.answers)


def choice(ob: Observation, params: ScoringParams) -> tuple[int, float]:
    k = params.reader_sentences
    return reader_choice(ob.ev, ReaderEvidence(ob.rev.top[:k], ob.rev.readings[:k]), params,
                         ob.retrieval_confidence)


def features(ob: Observation, params: ScoringParams) -> np.ndarray:
    best, _ = choice(ob, params)
    reading = ob.rev.readings[best]
    assert reading is not None
    return reader_features(reading, ob.retrieval_confidence)


def rates(observed: list[Observation], params: ScoringParams) -> dict[str, float]:
    """Per group: answered correctly (answerable) or refused (unanswerable)."""
    out: dict[str, list[bool]] = {}
    for ob in observed:
        _, p = choice(ob, params)
        answered = p >= params.reader_refusal_threshold
        ok = answered and first_citation_correct(ob, params) if ob.answerable else not answered
        out.setdefault(ob.group, []).append(ok)
    return {g: float(np.mean(v)) for g, v in out.items()}


def fit(observed: list[Observation], base: ScoringParams) -> ScoringParams:
    answerable = [ob for ob in observed if ob.answerable]
    best = max(((float(np.mean([first_citation_correct(ob, p) for ob in answerable])), w, k, p)
                for w in WEIGHTS for k in SENTENCES
                for p in [replace(base, reader_retrieval_weight=w, reader_sentences=k)]),
               key=lambda t: (t[0], -t[2]))
    params = best[3]
    x = np.array([features(ob, params) for ob in observed])
    y = np.array([ob.answerable and first_citation_correct(ob, params) for ob in observed], dtype=np.float64)
    weights, bias = fit_logistic(x, y)
    params = replace(params, reader_refusal_weights=[round(float(v), 6) for v in weights],
                     reader_refusal_bias=round(float(bias), 6))
    return fit_threshold(observed, params, MAX_ANSWERABLE_REFUSED["id"])


def fit_threshold(observed: list[Observation], params: ScoringParams, budget: float) -> ScoringParams:
    """The highest threshold that refuses at most ``budget`` of every answerable group's questions
    (the same budget as the retrieval-only refusal: eval.calibrate.MAX_ANSWERABLE_REFUSED). A wrong
    answer with exact citations is checkable; a refused answerable question is simply lost."""
    confidence: dict[str, list[float]] = {}
    for ob in observed:
        if ob.answerable:
            confidence.setdefault(ob.group, []).append(choice(ob, params)[1])
    threshold = min(float(np.quantile(values, budget)) for values in confidence.values())
    return replace(params, reader_refusal_threshold=round(threshold, 6))


def facqa_observations(tanya: Tanya, reader: Reader, items: list[facqa.FacQAItem], params: ScoringParams,
                       label: str) -> list[Observation]:
    out = []
    for it in tqdm(items, desc=f"reading {label}", file=sys.stderr):
        cands = collect_candidates(tanya.index, it.question)
        for group, c, answerable in ((label, cands, True), (f"{label}-absent", cands.without_doc(it.doc_id), False)):
            ob = observe(tanya, reader, c, params, group, answerable, it.doc_id, it.answers)
            if ob is not None:
                out.append(ob)
    return out


def idk_observations(reader: Reader, params: ScoringParams, home: Path) -> list[Observation]:
    examples = calibration_examples()
    doc_of = {p: f"idk-{i:04d}" for i, p in enumerate(sorted({ex.passage for ex in examples}))}
    tanya = eval_index(Path(home), DataHome.resolve().model_dir)  # the user's model, not a copy
    tanya.add([Document(d, p, p[:60]) for p, d in doc_of.items()], progress=True)
    out = []
    for ex in tqdm(examples, desc="reading idk (held out)", file=sys.stderr):
        cands = collect_candidates(tanya.index, ex.question)
        ob = observe(tanya, reader, cands, params, "idk" if ex.answerable else "idk-unans", ex.answerable,
                     doc_of[ex.passage], (ex.answer_text,) if ex.answer_text else ())
        if ob is not None:
            out.append(ob)
    tanya.close()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=Path(".cache/facqa-home"),
                        help="data home holding the FacQA index (built once)")
    parser.add_argument("--facqa-questions", type=int, default=400, help="FacQA train questions sampled (speed)")
    parser.add_argument("--english-questions", type=int, default=250, help="English FacQA train questions sampled")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--write", action="store_true", help="save to rag/params.json")
    args = parser.parse_args(argv)

    params = Params.load()
    tanya = open_facqa(args.home)
    tanya.use_reader = True
    reader = tanya.reader
    assert reader is not None
    _, items = facqa.load(("train",))
    rng = random.Random(args.seed)
    sample = rng.sample(items["train"], min(args.facqa_questions, len(items["train"])))
    english = facqa.english_items({"train": items["train"]})["train"]
    english = rng.sample(english, min(args.english_questions, len(english)))
    indonesian = facqa_observations(tanya, reader, sample, params.id, "facqa")
    english_obs = facqa_observations(tanya, reader, english, params.en, "facqa")
    with tempfile.TemporaryDirectory(prefix="tanya-idk-calibration-") as home:
        indonesian += idk_observations(reader, params.id, Path(home))
    fitted_id = fit(indonesian, params.id)
    shared = {k: getattr(fitted_id, k) for k in ("reader_retrieval_weight", "reader_sentences",
                                                  "reader_refusal_weights", "reader_refusal_bias")}
    fitted_en = fit_threshold(english_obs, replace(params.en, **shared), MAX_ANSWERABLE_REFUSED["en"])
    notes = {"id": rates(indonesian, fitted_id), "en": rates(english_obs, fitted_en),
             "first_citation_correct": {
                 "id": float(np.mean([first_citation_correct(o, fitted_id) for o in indonesian if o.answerable])),
                 "en": float(np.mean([first_citation_correct(o, fitted_en) for o in english_obs if o.answerable]))}}
    result = {k: getattr(fitted_id, k) for k in (*shared, "reader_refusal_threshold")}
    print(json.dumps({"id": result, "en_threshold": fitted_en.reader_refusal_threshold, "rates": notes}, indent=2))
    if args.write:
        updated = Params(id=fitted_id, en=fitted_en)
        old = json.loads(Path("rag/params.json").read_text(encoding="utf-8")).get("_notes", {})
        updated.save(notes={**old, "reader_fitted_by": "python -m eval.calibrate_reader --write",
                            "reader_calibration": notes})
    return 0


if __name__ == "__main__":
    sys.exit(main())
