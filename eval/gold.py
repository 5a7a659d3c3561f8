"""Gold question sets in JSONL: ``{id, question, lang, doc, evidence, answer: [..], answerable, follows?}``.

A question is answered correctly when it is answerable, not refused, a citation comes from ``doc`` and
the cited sentences contain one of ``answer``; an unanswerable question is correct when refused.
``follows`` names the previous question of a conversation: it is asked with that history. A question
whose id is a follow-up's id plus ``-full`` is that follow-up written out in full (for comparing the two).
Asking and scoring live in ``eval.suite``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from eval.metrics import contains_answer
from index.errors import InputError
from rag.answer import Answer

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
    def generated_correct(self) -> bool:
        """As ``correct``, for what the user is shown with an LLM: its checked text, or the extractive
        answer when it fell back (the citations, and so the documents, are the same)."""
        generated = self.answer.generated
        if generated is None or generated.text is None or not self.gold.answerable:
            return self.correct
        docs = [self.gold.doc] if isinstance(self.gold.doc, str) else self.gold.doc or []
        from_doc = any(c.doc_id in docs for c in self.answer.citations)
        return not self.answer.abstained and from_doc and contains_answer(generated.text, self.gold.answer)

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
