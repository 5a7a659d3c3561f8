"""Accuracy floors on fixed data: the seed gold set and a fixed sample of FacQA valid. The floors sit a
little under the figures measured when they were set, so a real regression fails them. The whole of
FacQA valid (every FacQA passage indexed, both languages) is `tanya eval`'s, not the test suite's."""

from __future__ import annotations

from pathlib import Path

import pytest

from eval import facqa
from eval.gold import SEED_GOLD, load_gold
from eval.suite import EvalSet, facqa_gold, run_set, summarize, summarize_by_language
from rag.tanya import Tanya


def test_seed_gold_set(seed_tanya: Tanya) -> None:
    results = run_set(EvalSet("seed", [(seed_tanya, load_gold(SEED_GOLD))]), progress=False)
    summary = summarize_by_language(results)
    failures = [f"{r.gold.id} {r.gold.question!r} -> {r.answer.answer[:80]!r}" for r in results if not r.correct]
    assert summary["id"]["correct"] >= FLOORS["seed_id"], failures
    assert summary["en"]["correct"] >= FLOORS["seed_en"], failures
    assert summary["all"]["refusal_recall"] >= FLOORS["seed_refused"], failures
    assert summary["all"]["offsets_exact"] == 1.0  # every citation of every answer


# The first questions of FacQA valid over the passages of all of FacQA valid (273): a third of the time of
# the 311 questions over all 1,295 FacQA passages, and figures within 0.02 of the 311 over the 273.
FACQA_SAMPLE = 150


@pytest.fixture(scope="module")
def facqa_tanya(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Tanya:
    docs, items = facqa.load()
    valid_passages = {item.doc_id for item in items["valid"]}
    tanya = Tanya.open(tmp_path_factory.mktemp("facqa-home"))
    tanya.add([doc for doc in docs if doc.doc_id in valid_passages])
    return tanya


def test_facqa_valid_sample(facqa_tanya: Tanya) -> None:
    _, items = facqa.load()
    valid = items["valid"][:FACQA_SAMPLE]
    s = summarize(run_set(EvalSet("facqa", [(facqa_tanya, facqa_gold(valid, "id"))]), progress=False))
    print(f"FacQA valid sample: cited first {s['gold_cited_first']:.3f}, answer in citations "
          f"{s['answer_in_citations']:.3f}, in the first {s['answer_in_first_citation']:.3f}, "
          f"short answer F1 {s['short_answer_f1']:.3f}, refused {s['answerable_refused']:.3f}")
    assert s["gold_cited_first"] >= FLOORS["facqa_cited_first"]
    assert s["answer_in_citations"] >= FLOORS["facqa_answer_in"]
    assert s["answerable_refused"] <= FLOORS["facqa_refused_max"]
    # The reader: the first citation holds the answer, and its short answer matches the gold span.
    assert s["answer_in_first_citation"] >= FLOORS["facqa_answer_in_first"]
    assert s["short_answer_f1"] >= FLOORS["facqa_short_f1"]
    assert s["offsets_exact"] == 1.0
    hits = facqa_tanya.retrieve(valid[0].question, k=10)
    assert facqa_tanya.document(hits[0].doc_id).text[hits[0].start : hits[0].end] == hits[0].text


FLOORS = {  # in the comments: measured with the stage-3 int8 reader, 7-bit weights (2026-12-07); fp32 passes too
    "seed_id": 0.90,  # 0.925 (0.950 with 8-bit weights, which AVX2-only CPUs computed differently: 0.875)
    "seed_en": 0.75,  # 0.818
    "seed_refused": 0.75,  # 0.857
    # The FacQA sample (all 311 over the same 273 passages in brackets; over all 1,295 in the README):
    "facqa_cited_first": 0.84,  # 0.873 (0.871)
    "facqa_answer_in": 0.83,  # 0.867 (0.859)
    "facqa_refused_max": 0.10,  # 0.080 (0.071): 12 of the 150
    "facqa_answer_in_first": 0.83,  # 0.867 (0.859)
    "facqa_short_f1": 0.72,  # 0.766 (0.751)
}
