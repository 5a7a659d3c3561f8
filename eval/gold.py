"""Gold question sets in JSONL: ``{id, question, lang, doc, evidence, answer: [..], answerable, follows?}``.

A question is answered correctly when it is answerable, not refused, a citation comes from ``doc`` and
the cited sentences contain one of ``answer``; an unanswerable question is correct when refused.
``follows`` names the previous question of a conversation: it is asked with that history.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from eval.metrics import contains_answer, percentile
from index.documents import InputError
from rag.answer import Answer
from rag.tanya import Tanya

SEED_GOLD = Path(__file__).parent / "data" / "seed_gold.jsonl"


@dataclass
class GoldQuestion:
    id: str
    question: str
    lang: str
    doc: str | list[str] | None  # the document(s) an answer may cite
    evidence: str | None
    answer: list[str]
    answerable: bool
    follows: str | None = None


@dataclass
class GoldResult:
    gold: GoldQuestion
    answer: Answer
    seconds: float

    @property
    def cited_text(self) -> str:
        return " ".join(c.sentence for c in self.answer.citations)

    @property
    def correct(self) -> bool:
        if not self.gold.answerable:
            return self.answer.abstained
        docs = [self.gold.doc] if isinstance(self.gold.doc, str) else self.gold.doc or []
        from_doc = any(c.doc_id in docs for c in self.answer.citations)
        return not self.answer.abstained and from_doc and contains_answer(self.cited_text, self.gold.answer)

    @property
    def evidence_cited(self) -> bool:
        ev = self.gold.evidence
        return ev is not None and any(ev in c.sentence for c in self.answer.citations)


def load_gold(path: Path) -> list[GoldQuestion]:
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            rows.append(GoldQuestion(**{k: data.get(k) for k in GoldQuestion.__dataclass_fields__
                                        if k in data or k == "follows"}))
        except (ValueError, TypeError) as exc:
            raise InputError(f"{path}:{number}: not a gold question ({exc})") from None
    return rows


def history_of(q: GoldQuestion, by_id: dict[str, GoldQuestion]) -> list[str]:
    chain: list[str] = []
    while q.follows and q.follows in by_id and len(chain) < 20:
        q = by_id[q.follows]
        chain.insert(0, q.question)
    return chain


def run_gold(tanya: Tanya, questions: list[GoldQuestion], progress: bool = True) -> list[GoldResult]:
    by_id = {q.id: q for q in questions}
    results = []
    for q in tqdm(questions, desc="asking", disable=not progress, file=sys.stderr):
        start = time.perf_counter()
        answer = tanya.ask(q.question, history=history_of(q, by_id))
        results.append(GoldResult(q, answer, time.perf_counter() - start))
    return results


def summarize(results: list[GoldResult]) -> dict[str, float]:
    def rate(rows: list[GoldResult]) -> float:
        return sum(r.correct for r in rows) / len(rows) if rows else float("nan")

    answerable = [r for r in results if r.gold.answerable]
    return {
        "questions": len(results),
        "accuracy": rate(results),
        "accuracy_id": rate([r for r in results if r.gold.lang == "id"]),
        "accuracy_en": rate([r for r in results if r.gold.lang == "en"]),
        "answerable_correct": rate(answerable),
        "evidence_cited": sum(r.evidence_cited for r in answerable) / len(answerable) if answerable else 0.0,
        "unanswerable_refused": rate([r for r in results if not r.gold.answerable]),
        "followups_correct": rate([r for r in results if r.gold.follows]),
        "latency_p50_ms": percentile([r.seconds * 1000 for r in results], 50),
        "latency_p95_ms": percentile([r.seconds * 1000 for r in results], 95),
    }


def main() -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Ask a gold set against an index and print the scores.")
    parser.add_argument("--gold", type=Path, default=SEED_GOLD)
    parser.add_argument("--corpus", type=Path, default=Path("corpus"))
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args()
    tanya = Tanya.open(args.home)
    tanya.add_paths([args.corpus])
    results = run_gold(tanya, load_gold(args.gold))
    if args.verbose:
        for r in results:
            mark = "ok " if r.correct else "BAD"
            print(f"{mark} {r.gold.id} [{r.answer.confidence:.2f}] {r.gold.question}\n      -> {r.answer.answer[:150]}")
    print(json.dumps(summarize(results), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
