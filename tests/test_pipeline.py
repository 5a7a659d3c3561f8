"""The answer pipeline's trace (rag/pipeline.py): what each stage saw, the same answer as ``ask``, and the
reader's training data mined from exactly what the served pipeline reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.reader_data import pipeline_groups
from rag.pipeline import Pipeline
from rag.tanya import Tanya
from tests.helpers import KIRBY_DOC, run_cli

QUESTIONS = ["Siapa juru bicara Departemen Luar Negeri AS?",
             "Who is the spokesman of the US State Department?",
             "Berapa orang tewas dalam serangan terhadap konvoi bantuan?",
             "Siapa pelatih tim nasional sepak bola Indonesia?"]  # not in the corpus: refused


def test_mined_training_groups_are_what_the_served_pipeline_reads(seed_tanya: Tanya) -> None:
    groups = pipeline_groups(seed_tanya, [(q, None, None, "seed") for q in QUESTIONS])
    assert [g.question for g in groups] == QUESTIONS
    for group in groups:
        served = seed_tanya.ask_traced(group.question)
        assert served.reader is not None and served.reader.top == served.read  # what the reader was given
        assert group.sentences == served.read_texts
        assert len(group.sentences) == seed_tanya.params.for_language(served.candidates.lang).reader_sentences


def test_left_out_document_is_as_if_it_were_not_indexed(seed_tanya: Tanya) -> None:
    """What the refusal calibration and the "-absent" training groups rely on."""
    pipeline = Pipeline(seed_tanya.index, seed_tanya.params, seed_tanya.reader)
    whole = pipeline.run(QUESTIONS[0])
    assert whole.answer.citations[0].doc_id == KIRBY_DOC
    without = pipeline.run(QUESTIONS[0], leave_out=KIRBY_DOC)
    assert KIRBY_DOC not in {doc for doc, _ in without.candidates.keys}
    assert without.evidence is None or KIRBY_DOC not in {r.doc_id for r in without.evidence.refs}
    assert all(c.doc_id != KIRBY_DOC for c in without.answer.citations)


@pytest.mark.parametrize("question", QUESTIONS)
def test_a_trace_shows_each_stage_and_agrees_with_the_answer(seed_tanya: Tanya, question: str) -> None:
    trace = seed_tanya.ask_traced(question)
    assert trace.answer.to_json() == seed_tanya.ask(question).to_json()
    assert all(c.score == round(c.score, 4) for c in trace.answer.citations)  # the JSON contract's precision
    shown = trace.to_json(seed_tanya.params)
    assert shown["retrieve"]["candidates"] == len(trace.candidates.keys) > 0
    best = [row["fused"] for row in shown["retrieve"]["best"]]
    assert best == sorted(best, reverse=True)
    for row in shown["read"] + shown["cited"]:
        text = seed_tanya.document(row["doc_id"]).text
        if "text" in row:
            assert text[row["start"] : row["end"]] == row["text"]
        if "reader" in row:  # the reader's span lies inside its sentence
            assert row["start"] <= row["reader"]["span"][0] <= row["reader"]["span"][1] <= row["end"]
    assert [(c["doc_id"], c["start"], c["end"]) for c in shown["cited"]] == [
        (c.doc_id, c.start, c.end) for c in trace.answer.citations]
    decided = shown["decide"]
    assert decided["refused"] == trace.answer.abstained
    assert decided["confidence"] == trace.answer.confidence
    assert (decided["confidence"] < decided["threshold"]) == trace.answer.abstained
    assert set(decided["retrieval_features"]) >= {"top_chunk_dense", "best_sentence_coverage"}


def test_ask_trace_on_the_command_line(seed_home: Path, tmp_path: Path, seed_tanya: Tanya) -> None:
    """``tanya ask --trace`` adds a "trace" to the answer's JSON, which is otherwise unchanged."""
    import shutil

    home = tmp_path / "home"  # a copy: this process holds the seed home's embedded Chroma
    shutil.copytree(seed_home, home)
    result = run_cli("ask", "--trace", "-", home=home, stdin="\n".join(QUESTIONS[:2]) + "\n")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["question"] for r in rows] == QUESTIONS[:2]
    for row in rows:
        trace = row.pop("trace")
        assert set(trace) == {"query", "language", "retrieve", "gather", "read", "decide", "cited"}
        assert row == json.loads(json.dumps(seed_tanya.ask(row["question"]).to_json()))
