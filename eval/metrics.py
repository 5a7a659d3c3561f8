"""Metric functions, kept free of I/O so they can be checked on hand-made cases."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def first_rank(ranked_doc_ids: Sequence[str], gold: str) -> int | None:
    """1-based rank of the first result from the gold document, or None."""
    for rank, doc_id in enumerate(ranked_doc_ids, start=1):
        if doc_id == gold:
            return rank
    return None


def recall_at(ranks: Sequence[int | None], k: int) -> float:
    return float(np.mean([r is not None and r <= k for r in ranks])) if ranks else 0.0


def mrr_at(ranks: Sequence[int | None], k: int = 10) -> float:
    return float(np.mean([1.0 / r if r is not None and r <= k else 0.0 for r in ranks])) if ranks else 0.0


def contains_answer(text: str, answers: Sequence[str]) -> bool:
    low = " ".join(text.lower().split())
    return any(" ".join(a.lower().split()) in low for a in answers if a.strip())


def refusal_rates(abstained_on_answerable: Sequence[bool], abstained_on_unanswerable: Sequence[bool]
                  ) -> dict[str, float]:
    """Precision/recall of refusing, with the unanswerable questions as the positive class."""
    true_pos = sum(abstained_on_unanswerable)
    false_pos = sum(abstained_on_answerable)
    refused = true_pos + false_pos
    return {
        "refusal_precision": true_pos / refused if refused else 1.0,
        "refusal_recall": true_pos / len(abstained_on_unanswerable) if abstained_on_unanswerable else 1.0,
        "answerable_refused": false_pos / len(abstained_on_answerable) if abstained_on_answerable else 0.0,
    }


def percentile(values: Sequence[float], q: float) -> float:
    return float(np.percentile(values, q)) if len(values) else 0.0


def squad_normalize(text: str) -> str:
    """SQuAD's answer normalisation: lower case, no punctuation, no English articles, single spaces."""
    import re
    import string

    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def exact_match(prediction: str, answers: Sequence[str]) -> float:
    return float(any(squad_normalize(prediction) == squad_normalize(a) for a in answers))


def token_f1(prediction: str, answers: Sequence[str]) -> float:
    """SQuAD's token-overlap F1 against the best-matching gold answer."""
    from collections import Counter

    best = 0.0
    predicted = squad_normalize(prediction).split()
    for answer in answers:
        gold = squad_normalize(answer).split()
        common = sum((Counter(predicted) & Counter(gold)).values())
        if common:
            precision, recall = common / len(predicted), common / len(gold)
            best = max(best, 2 * precision * recall / (precision + recall))
        elif not predicted and not gold:
            best = 1.0
    return best
