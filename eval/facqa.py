"""FacQA (IndoNLU, Apache-2.0): Indonesian factoid questions over Kompas news passages.

The CSVs hold Python-literal token lists (punctuation split off) and a BIO tag per passage token
marking the answer. Passage text = tokens joined by single spaces; the corpus is every unique passage
of the splits loaded, each a document ``facqa-NNNN``.
"""

from __future__ import annotations

import ast
import csv
from dataclasses import dataclass
from pathlib import Path

from index.documents import Document

DATA = Path(__file__).parent / "data"
SPLITS = {"train": DATA / "facqa_train.csv", "valid": DATA / "facqa_valid.csv"}
# English translations of FacQA questions (all of valid, the first 500 of train), for cross-lingual
# measurement and for fitting the English parameters; see eval/README.md for how they were made.
ENGLISH = DATA / "facqa_en.jsonl"


@dataclass(frozen=True)
class FacQAItem:
    id: str
    question: str
    passage: str
    doc_id: str
    answers: tuple[str, ...]


def _answer_spans(tokens: list[str], labels: list[str]) -> tuple[str, ...]:
    spans: list[list[str]] = []
    for token, label in zip(tokens, labels, strict=True):
        if label == "B" or (label == "I" and not spans):
            spans.append([token])
        elif label == "I":
            spans[-1].append(token)
    return tuple(" ".join(s) for s in spans)


def load(splits: tuple[str, ...] = ("train", "valid"), files: dict[str, Path] | None = None
         ) -> tuple[list[Document], dict[str, list[FacQAItem]]]:
    """The shared passage corpus of ``splits`` and each split's questions."""
    files = files or SPLITS
    doc_of: dict[str, str] = {}
    items: dict[str, list[FacQAItem]] = {}
    for split in splits:
        items[split] = []
        with files[split].open(encoding="utf-8", newline="") as handle:
            for number, row in enumerate(csv.DictReader(handle)):
                question = " ".join(ast.literal_eval(row["question"]))
                tokens = ast.literal_eval(row["passage"])
                passage = " ".join(tokens)
                doc_id = doc_of.setdefault(passage, f"facqa-{len(doc_of):04d}")
                answers = _answer_spans(tokens, ast.literal_eval(row["seq_label"]))
                items[split].append(FacQAItem(f"{split}-{number}", question, passage, doc_id, answers))
    docs = [Document(doc_id, passage, passage[:80]) for passage, doc_id in doc_of.items()]
    return docs, items


def english_items(items: dict[str, list[FacQAItem]], path: Path = ENGLISH) -> dict[str, list[FacQAItem]]:
    """The same questions asked in English, where a translation exists (same gold passage and answer)."""
    import json

    out: dict[str, list[FacQAItem]] = {split: [] for split in items}
    if not path.exists():
        return out
    english = {row["id"]: row["question_en"] for row in map(json.loads, path.read_text(encoding="utf-8").splitlines())}
    for split, rows in items.items():
        out[split] = [FacQAItem(f"{it.id}-en", english[it.id], it.passage, it.doc_id, it.answers)
                      for it in rows if it.id in english]
    return out
