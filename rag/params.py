"""Tunable scoring parameters, one set per question language, fitted on FacQA train (and its English
translation) by ``python -m eval.calibrate --write`` and shipped in ``rag/params.json``. The class
defaults only apply when that file is missing.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

PARAMS_FILE = Path(__file__).with_name("params.json")
LANGUAGES = ("id", "en")


@dataclass
class ScoringParams:
    # Chunk fusion: fused = (1 - w) * dense_norm + w * bm25_norm.
    bm25_weight: float = 0.5
    # Sentence choice inside the best chunks: a weighted sum of normalised signals.
    sentence_dense: float = 1.0
    sentence_lexical: float = 0.5
    sentence_chunk: float = 1.0
    sentence_answer_type: float = 0.5
    # Extra sentences join the answer when their score is within this margin of the best one.
    extra_sentence_margin: float = 0.05
    chunks_for_sentences: int = 3
    # Refusal: logistic model over evidence features; refuse when P(answerable) < threshold.
    refusal_weights: list[float] = field(default_factory=lambda: [0.0] * 8)
    refusal_bias: float = 1.0
    refusal_threshold: float = 0.5
    # The reader (rag/reader/inference.py): how many of the best sentences it reads, how much the retrieval
    # score adds to its answerable logit when picking the sentence to cite, and its refusal model over
    # rag.evidence.reader_features (fitted by eval/calibrate_reader.py).
    reader_sentences: int = 5
    reader_retrieval_weight: float = 1.0
    reader_refusal_weights: list[float] = field(default_factory=lambda: [1.0, 0.0, 0.0])
    reader_refusal_bias: float = 0.0
    reader_refusal_threshold: float = 0.5

    @classmethod
    def from_dict(cls, data: dict) -> ScoringParams:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


@dataclass
class Params:
    """Parameters per question language (Indonesian, English)."""

    id: ScoringParams = field(default_factory=ScoringParams)
    en: ScoringParams = field(default_factory=lambda: ScoringParams(bm25_weight=0.15))

    def for_language(self, lang: str) -> ScoringParams:
        return self.en if lang == "en" else self.id

    @classmethod
    def load(cls, path: Path = PARAMS_FILE) -> Params:
        if not path.exists():
            return cls()
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{lang: ScoringParams.from_dict(data[lang]) for lang in LANGUAGES if lang in data})

    def save(self, path: Path = PARAMS_FILE, notes: dict | None = None) -> None:
        payload = {lang: asdict(self.for_language(lang)) for lang in LANGUAGES}
        if notes:
            payload["_notes"] = notes
        path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
