"""What a question gets back: an ``Answer`` of cited source sentences (or a refusal), each ``Citation``
exact by construction (``sentence == text[start:end]`` of the cited document), and the reader's
``ShortAnswer`` inside the first one. rag/pipeline.py builds them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from index.filters import DocumentFilter
from rag.generation.check import Generated

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
    # The LLM's answer over the citations, checked sentence by sentence (rag/generation/check.py); None when no
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


def refusal(question: str, lang: str, confidence: float = 0.0) -> Answer:
    """The honest "not in the corpus" answer, in the question's language."""
    return Answer(question, REFUSAL_EN if lang == "en" else REFUSAL_ID, True, confidence=confidence)
