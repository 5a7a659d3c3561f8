"""`tanya eval`: ask gold question sets through the real pipeline and measure everything at once.

A set is one or more (index, questions) parts. Built in:

- ``seed``: ``eval/data/seed_gold.jsonl`` over the seed articles in ``corpus/``;
- ``facqa``: FacQA valid (Indonesian and its English translation) over every unique FacQA passage, plus
  the not-in-corpus questions: the valid questions whose passage no train question uses, asked against a
  copy of the index without those passages, keeping only those whose answer string occurs nowhere in
  what is left (so no remaining passage can answer them);
- ``followups``: chains of follow-up questions in Indonesian and English over ``corpus/`` and a CLICK-ID
  sample (``followups_set``);
- a user's own JSONL (``--gold``), asked against ``--corpus`` (indexed separately) or the user's index.

Every question is asked with ``Tanya.ask`` (timed: that is the latency reported) and its candidates are
also ranked by each retrieval mode, so the modes are compared on the same questions.
"""

from __future__ import annotations

import hashlib
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from eval import facqa
from eval.gold import SEED_GOLD, GoldQuestion, GoldResult, history_of, load_gold
from eval.metrics import (
    contains_answer,
    exact_match,
    first_rank,
    mrr_at,
    percentile,
    recall_at,
    refusal_rates,
    token_f1,
)
from index.documents import Document, read_paths
from index.embedder import configured_backend
from index.errors import InputError
from index.filters import DocumentFilter
from index.home import DataHome
from index.index import Index
from index.lexical import language
from rag.params import ScoringParams
from rag.retriever import Candidates, Scope
from rag.tanya import Tanya

REPO = Path(__file__).resolve().parent.parent
SEED_CORPUS = REPO / "corpus"


def rrf(cands: Candidates, k: float = 60.0) -> np.ndarray:
    """Plain reciprocal-rank fusion of the dense and BM25 rankings (the usual baseline)."""
    dense_rank = np.argsort(np.argsort(-cands.dense, kind="stable"))
    bm25_rank = np.argsort(np.argsort(-cands.bm25, kind="stable"))
    bm25_part = np.where(cands.bm25 > 0, 1.0 / (k + bm25_rank + 1), 0.0)
    return 1.0 / (k + dense_rank + 1) + bm25_part


def ranking_modes(params_of: Callable[[str], ScoringParams]) -> dict[str, Callable[[Candidates], np.ndarray]]:
    """Chunk scores of each retrieval mode; ``hybrid`` (with ``params_of(language)``) is what
    ``Tanya.retrieve`` returns."""
    return {
        "bm25": lambda c: c.bm25 + 1e-6 * c.dense,  # BM25 order; dense only breaks exact ties
        "dense": lambda c: c.dense,
        "rrf": rrf,
        "hybrid": lambda c: c.fused(params_of(c.lang)),
    }


def doc_order(cands: Candidates, scores: np.ndarray) -> list[str]:
    """Distinct documents in the order of their best chunk."""
    seen: dict[str, None] = {}
    for i in np.argsort(-scores, kind="stable"):
        seen.setdefault(cands.keys[i][0], None)
    return list(seen)


@dataclass
class QuestionRun(GoldResult):
    ranks: dict[str, int | None] = field(default_factory=dict)  # mode -> rank of the first gold document
    offsets_exact: bool = True
    trace: dict | None = None  # rag.pipeline.Trace.to_json, with --traces (eval/reader_bench.py reads them)

    @property
    def gold_docs(self) -> list[str]:
        return [self.gold.doc] if isinstance(self.gold.doc, str) else list(self.gold.doc or [])

    @property
    def gold_cited_first(self) -> bool:
        return bool(self.answer.citations) and self.answer.citations[0].doc_id in self.gold_docs

    @property
    def gold_sentence_cited(self) -> bool:
        """A citation from a gold document that holds the evidence (or, without one, the answer)."""
        for c in self.answer.citations:
            if c.doc_id in self.gold_docs and (self.gold.evidence in c.sentence if self.gold.evidence
                                                else contains_answer(c.sentence, self.gold.answer)):
                return True
        return False

    @property
    def answer_in_citations(self) -> bool:
        return contains_answer(self.cited_text, self.gold.answer)

    @property
    def short_answer_scores(self) -> tuple[float, float]:
        """SQuAD 2.0 exact match and F1 of the short answer: an unanswerable question scores 1 when
        refused; an answerable one scores 0 when refused or without a short answer."""
        if not self.gold.answerable:
            return (1.0, 1.0) if self.answer.abstained else (0.0, 0.0)
        short = self.answer.short_answer
        if self.answer.abstained or short is None:
            return 0.0, 0.0
        return exact_match(short.text, self.gold.answer), token_f1(short.text, self.gold.answer)

    @property
    def answer_in_first_citation(self) -> bool:
        """The first cited sentence holds the answer, whichever document it comes from (FacQA's passages
        overlap: the same fact is often in a sibling passage of the same article)."""
        return bool(self.answer.citations) and contains_answer(self.answer.citations[0].sentence, self.gold.answer)


@dataclass
class EvalSet:
    name: str
    parts: list[tuple[Tanya, list[GoldQuestion]]]
    description: str = ""

    @property
    def questions(self) -> int:
        return sum(len(qs) for _, qs in self.parts)


def ask_one(tanya: Tanya, q: GoldQuestion, by_id: dict[str, GoldQuestion], scope: Scope | None = None,
            keep_trace: bool = False) -> QuestionRun:
    """Ask ``q`` (under ``scope``'s filter, when given: a question whose documents it leaves out is then
    scored as one the corpus cannot answer) and measure everything about its answer; ``keep_trace`` keeps
    what each stage of the pipeline saw."""
    history = history_of(q, by_id)
    if scope is not None and q.answerable and q.doc is not None and not scope.doc_ids & set(
            [q.doc] if isinstance(q.doc, str) else q.doc):
        q = replace(q, answerable=False)
    start = time.perf_counter()
    trace = tanya.ask_traced(q.question, history=history, doc_filter=scope.filter if scope else None)
    seconds = time.perf_counter() - start
    answer = trace.answer
    run = QuestionRun(q, answer, seconds, trace=trace.to_json(tanya.params) if keep_trace else None)
    if q.answerable and run.gold_docs:
        cands = trace.candidates  # the very candidates the answer came from
        modes = ranking_modes(tanya.params.for_language)
        for mode, score in modes.items():
            run.ranks[mode] = min((r for d in run.gold_docs if (r := first_rank(doc_order(cands, score(cands)), d))),
                                  default=None)
        # What a reader sees: the cited documents first, then the rest of the hybrid ranking.
        shown = [c.doc_id for c in answer.citations]
        shown += [d for d in doc_order(cands, modes["hybrid"](cands)) if d not in shown]
        run.ranks["pipeline"] = None if answer.abstained else min(
            (r for d in run.gold_docs if (r := first_rank(shown, d))), default=None)
    texts = {d: doc.text for d in {c.doc_id for c in answer.citations} if (doc := tanya.document(d))}
    run.offsets_exact = all(c.doc_id in texts and texts[c.doc_id][c.start : c.end] == c.sentence
                            for c in answer.citations)
    short = answer.short_answer
    if short is not None:  # inside the first citation, and exact
        first = answer.citations[0]
        run.offsets_exact &= (short.doc_id in texts and texts[short.doc_id][short.start : short.end] == short.text
                              and short.doc_id == first.doc_id and first.start <= short.start <= short.end <= first.end)
    return run


def run_set(eval_set: EvalSet, progress: bool = True, doc_filter: DocumentFilter | None = None,
            traces: bool = False) -> list[QuestionRun]:
    """Every question of the set, asked under ``doc_filter`` when given (``tanya eval --since/--until/--source``);
    ``traces``: each run keeps its pipeline trace."""
    runs = []
    bar = tqdm(total=eval_set.questions, desc=f"eval {eval_set.name}", disable=not progress, file=sys.stderr,
               dynamic_ncols=True)
    for tanya, questions in eval_set.parts:
        if questions:  # warm-up, untimed: the first question loads the model and the background sample
            tanya.ask(questions[0].question)
        by_id = {q.id: q for q in questions}
        scope = Scope.of(tanya.index, doc_filter) if doc_filter else None
        for q in questions:
            runs.append(ask_one(tanya, q, by_id, scope, keep_trace=traces))
            bar.update()
    bar.close()
    return runs


MODES = ("bm25", "dense", "rrf", "hybrid", "pipeline")
NO_READER = " (no reader)"  # suffix of a set answered by the retrieval scorer alone, for comparison


def summarize(runs: list[QuestionRun]) -> dict:
    """Every figure of one group of questions (a set, or one language of it)."""

    def share(flags: list[bool]) -> float | None:
        return sum(flags) / len(flags) if flags else None

    def share_of(values: list[float]) -> float | None:
        return float(np.mean(values)) if values else None

    answerable = [r for r in runs if r.gold.answerable]
    unanswerable = [r for r in runs if not r.gold.answerable]
    ranked = [r for r in answerable if r.ranks]
    retrieval = {mode: {"R@1": recall_at(ranks, 1), "R@5": recall_at(ranks, 5), "R@10": recall_at(ranks, 10),
                        "MRR@10": mrr_at(ranks, 10)}
                 for mode in MODES for ranks in [[r.ranks.get(mode) for r in ranked]] if ranked}
    followups = [r for r in runs if r.gold.follows]
    written_out = {r.gold.id: r for r in runs}
    twins = [written_out[f"{r.gold.id}-full"] for r in followups if f"{r.gold.id}-full" in written_out]
    latencies = [r.seconds * 1000 for r in runs]
    return {
        "questions": len(runs),
        "answerable": len(answerable),
        "unanswerable": len(unanswerable),
        "correct": share([r.correct for r in runs]),
        "gold_cited_first": share([r.gold_cited_first for r in answerable]),
        "gold_sentence_cited": share([r.gold_sentence_cited for r in answerable]),
        "answer_in_citations": share([r.answer_in_citations for r in answerable]),
        "answer_in_first_citation": share([r.answer_in_first_citation for r in answerable]),
        "citations_mean": float(np.mean([len(r.answer.citations) for r in answerable])) if answerable else None,
        **refusal_rates([r.answer.abstained for r in answerable], [r.answer.abstained for r in unanswerable]),
        "followups_correct": share([r.correct for r in followups]),
        "followups_written_out_correct": share([r.correct for r in twins]),
        "offsets_exact": share([r.offsets_exact for r in runs]),
        "short_answer_em": share_of([r.short_answer_scores[0] for r in answerable]),
        "short_answer_f1": share_of([r.short_answer_scores[1] for r in answerable]),
        "squad2_f1": share_of([r.short_answer_scores[1] for r in runs]),
        "latency_p50_ms": percentile(latencies, 50),
        "latency_p95_ms": percentile(latencies, 95),
        "retrieval": retrieval,
    }


def summarize_generation(runs: list[QuestionRun]) -> dict | None:
    """Generated against extractive answers (``tanya eval --llm-url``): None when no LLM was asked."""
    asked = [r for r in runs if r.answer.generated is not None]
    if not asked:
        return None
    produced = [r for r in asked if r.answer.generated and r.answer.generated.text]
    kept = sum(len(r.answer.generated.checked_sentences) for r in asked if r.answer.generated)
    dropped = sum(len(r.answer.generated.dropped_sentences) for r in asked if r.answer.generated)
    answerable = [r for r in asked if r.gold.answerable]
    seconds = [r.answer.generated.seconds * 1000 for r in asked if r.answer.generated]
    return {
        "asked": len(asked),
        "fell_back": 1 - len(produced) / len(asked),
        "sentences_kept": kept / (kept + dropped) if kept + dropped else None,
        "extractive_correct": float(np.mean([r.correct for r in answerable])) if answerable else None,
        "generated_correct": float(np.mean([r.generated_correct for r in answerable])) if answerable else None,
        "in_question_language": float(np.mean([language(r.answer.generated.text or "") == r.gold.lang
                                               for r in produced if r.answer.generated])) if produced else None,
        "latency_p50_ms": percentile(seconds, 50),
        "latency_p95_ms": percentile(seconds, 95),
    }


def summarize_by_language(runs: list[QuestionRun]) -> dict[str, dict]:
    groups = {"all": runs, **{lang: [r for r in runs if r.gold.lang == lang] for lang in ("id", "en")}}
    return {name: {**summarize(rows), "generation": summarize_generation(rows)} for name, rows in groups.items()
            if rows}


# --- building the sets -------------------------------------------------------------------------------


def eval_index(root: Path, model_dir: Path) -> Tanya:
    """An index of its own under ``root`` (always embedded Chroma), sharing the user's model."""
    return Tanya(Index(DataHome(root, None, model_dir)))


def index_root(eval_root: Path, name: str) -> Path:
    """One folder per embedding backend: an index keeps the backend that built it (index/embedder.py)."""
    return eval_root / "indexes" / configured_backend() / name


def seed_set(eval_root: Path, model_dir: Path, corpus: Path = SEED_CORPUS, gold: Path = SEED_GOLD) -> EvalSet:
    if not corpus.is_dir():
        raise InputError(f"the seed corpus {corpus} is missing (run from a clone of the repository)")
    tanya = eval_index(index_root(eval_root, "seed"), model_dir)
    tanya.add_paths([corpus], progress=True)
    return EvalSet("seed", [(tanya, load_gold(gold))], f"{gold.name} over the {corpus.name}/ articles")


def facqa_gold(items: list[facqa.FacQAItem], lang: str) -> list[GoldQuestion]:
    return [GoldQuestion(it.id, it.question, lang, it.doc_id, None, list(it.answers), True) for it in items]


def facqa_set(eval_root: Path, model_dir: Path) -> EvalSet:
    docs, items = facqa.load()
    english = facqa.english_items(items)
    full_root = index_root(eval_root, "facqa")
    full = eval_index(full_root, model_dir)
    full.add(docs, progress=True)

    # Not in the corpus: passages only valid questions use, removed from a copy of the index.
    train_docs = {it.doc_id for it in items["train"]}
    held_out = {it.doc_id for it in items["valid"]} - train_docs
    absent_root = index_root(eval_root, "facqa-absent")
    if not (absent_root / "documents.sqlite3").exists():
        full.close()
        shutil.rmtree(absent_root, ignore_errors=True)
        shutil.copytree(full_root, absent_root, ignore=shutil.ignore_patterns("index.lock"))
        full = eval_index(full_root, model_dir)
    absent = eval_index(absent_root, model_dir)
    for doc_id in sorted(held_out):
        absent.delete(doc_id)  # a no-op once done
    remaining = " ".join(d.text for d in docs if d.doc_id not in held_out)

    def not_in_corpus(rows: list[facqa.FacQAItem], lang: str) -> list[GoldQuestion]:
        kept = [it for it in rows if it.doc_id in held_out and not contains_answer(remaining, it.answers)]
        return [GoldQuestion(f"{it.id}-absent", it.question, lang, None, None, list(it.answers), False)
                for it in kept]

    valid_id, valid_en = items["valid"], english["valid"]
    return EvalSet("facqa", [
        (full, facqa_gold(valid_id, "id") + facqa_gold(valid_en, "en")),
        (absent, not_in_corpus(valid_id, "id") + not_in_corpus(valid_en, "en")),
    ], f"FacQA valid ({len(docs):,} passages); not-in-corpus questions against the index without their "
       f"{len(held_out)} valid-only passages")


IDK_MRC_VALID = Path(__file__).parent / "data" / "idk_mrc_valid.json"


def idk_set(eval_root: Path, model_dir: Path, path: Path = IDK_MRC_VALID) -> EvalSet:
    """IDK-MRC valid with all its paragraphs indexed together: an unanswerable question's own
    on-topic paragraph is in the corpus, so the reader, not retrieval, has to say no."""
    import json

    paragraphs = json.loads(path.read_text(encoding="utf-8"))
    tanya = eval_index(index_root(eval_root, "idk-mrc-valid"), model_dir)
    docs = [Document(f"idk-{i:03d}", p["context"], p["context"][:60]) for i, p in enumerate(paragraphs)]
    tanya.add(docs, progress=True)
    questions = [GoldQuestion(qa["id"], qa["question"].strip(), "id", None if qa["is_impossible"] else doc.doc_id,
                              None, [a["text"] for a in qa["answers"]], not qa["is_impossible"])
                 for doc, p in zip(docs, paragraphs, strict=True) for qa in p["qas"]]
    return EvalSet("idk", [(tanya, questions)], f"IDK-MRC valid: {len(questions)} questions, all {len(docs)} "
                   "paragraphs indexed together (unanswerable questions are on a paragraph's topic)")


FOLLOWUPS_GOLD = Path(__file__).parent / "data" / "followups_gold.jsonl"
CLICKID_SAMPLE = Path(__file__).parent / "data" / "clickid_sample.jsonl"


def followups_set(eval_root: Path, model_dir: Path) -> EvalSet:
    """Conversations of three questions (who, when or where, what did he say), each in Indonesian and in
    English, over the seed articles and 40 CLICK-ID news articles of one week (eval/data/README.md): the
    follow-ups lean on the previous questions ("Apa katanya tentang ...?", "Where did he say it?")."""
    tanya = eval_index(index_root(eval_root, "followups"), model_dir)
    tanya.add_paths([SEED_CORPUS, CLICKID_SAMPLE], progress=True)
    questions = load_gold(FOLLOWUPS_GOLD)
    return EvalSet("followups", [(tanya, questions)], f"{len(questions)} questions in chains of three "
                   f"({FOLLOWUPS_GOLD.name}) over {SEED_CORPUS.name}/ and {CLICKID_SAMPLE.name}")


def custom_set(gold: Path, corpus: Path | None, eval_root: Path, model_dir: Path, user_index: Tanya | None
               ) -> EvalSet:
    questions = load_gold(gold)
    if corpus is None:
        if user_index is None:
            raise InputError("--gold without --corpus asks the index in the data home, which is not open")
        return EvalSet(gold.stem, [(user_index, questions)], f"{gold.name} against the data home's index")
    docs = read_paths([corpus])  # validated before anything is written
    key = hashlib.sha256(str(corpus.resolve()).encode()).hexdigest()[:12]
    tanya = eval_index(index_root(eval_root, f"custom-{key}"), model_dir)
    tanya.add(docs, progress=True)
    return EvalSet(gold.stem, [(tanya, questions)], f"{gold.name} over {corpus}")
