"""The eval suite: metric functions on hand-made runs, the FacQA loader on a small sample, and
`tanya eval` end to end (real model, real index, report with plots)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from eval import facqa
from eval.gold import GoldQuestion
from eval.metrics import contains_answer, mrr_at, recall_at, refusal_rates
from eval.suite import QuestionRun, summarize
from rag.answer import Answer, Citation
from tests.helpers import CORPUS, KIRBY_DOC, run_cli

TEXT = "Kirby berbicara di Washington. Hujan turun pada hari Senin."


def cited(question: str, doc: str, start: int, end: int) -> Answer:
    sentence = TEXT[start:end]
    return Answer(question, f"{sentence} [1]", False, [Citation(1, doc, "t", sentence, start, end, 1.0)], 0.9)


def refused(question: str) -> Answer:
    return Answer(question, "Maaf", True, [], 0.1)


def gold(qid: str, answerable: bool = True, lang: str = "id") -> GoldQuestion:
    return GoldQuestion(qid, f"q {qid}", lang, "d1" if answerable else None, "Kirby berbicara" if answerable else None,
                        ["Washington"] if answerable else [], answerable)


def test_perfect_run_scores_one_everywhere() -> None:
    runs = [QuestionRun(gold("a"), cited("q a", "d1", 0, 30), 0.01, {"hybrid": 1, "pipeline": 1}),
            QuestionRun(gold("b"), cited("q b", "d1", 0, 30), 0.03, {"hybrid": 1, "pipeline": 1}),
            QuestionRun(gold("c", answerable=False), refused("q c"), 0.02)]
    s = summarize(runs)
    assert s["correct"] == 1.0
    assert s["gold_cited_first"] == s["gold_sentence_cited"] == s["answer_in_citations"] == 1.0
    assert s["refusal_recall"] == s["refusal_precision"] == 1.0 and s["answerable_refused"] == 0.0
    assert s["retrieval"]["hybrid"] == {"R@1": 1.0, "R@5": 1.0, "R@10": 1.0, "MRR@10": 1.0}
    assert s["latency_p50_ms"] == pytest.approx(20.0)


def test_all_wrong_run_scores_zero() -> None:
    runs = [QuestionRun(gold("a"), cited("q a", "d2", 31, 59), 0.01, {"hybrid": None, "pipeline": None}),
            QuestionRun(gold("b"), refused("q b"), 0.01, {"hybrid": 11, "pipeline": None}),
            QuestionRun(gold("c", answerable=False), cited("q c", "d1", 0, 30), 0.01)]
    s = summarize(runs)
    assert s["correct"] == 0.0
    assert s["gold_cited_first"] == s["gold_sentence_cited"] == s["answer_in_citations"] == 0.0
    assert s["refusal_recall"] == 0.0 and s["answerable_refused"] == 0.5 and s["refusal_precision"] == 0.0
    assert s["retrieval"]["hybrid"]["R@10"] == 0.0 and s["retrieval"]["hybrid"]["MRR@10"] == 0.0


def test_refusal_and_rank_metrics_on_hand_counted_cases() -> None:
    # 3 unanswerable (2 refused), 4 answerable (1 refused): precision 2/3, recall 2/3, false refusals 1/4.
    rates = refusal_rates([True, False, False, False], [True, True, False])
    assert rates == {"refusal_precision": pytest.approx(2 / 3), "refusal_recall": pytest.approx(2 / 3),
                     "answerable_refused": 0.25}
    ranks = [1, 3, None, 12]
    assert recall_at(ranks, 1) == 0.25 and recall_at(ranks, 5) == 0.5 and recall_at(ranks, 10) == 0.5
    assert mrr_at(ranks, 10) == pytest.approx((1 + 1 / 3) / 4)
    assert contains_answer("pada  hari\nSenin (14/3)", ["hari senin"]) and not contains_answer("Senin", ["Selasa"])


def test_wrong_document_with_the_answer_string_is_not_correct() -> None:
    run = QuestionRun(gold("a"), cited("q a", "other", 0, 30), 0.01)
    assert run.answer_in_citations and not run.correct and not run.gold_cited_first


def test_facqa_loader_reads_token_lists_and_bio_answers(tmp_path: Path) -> None:
    sample = tmp_path / "sample.csv"
    passage = ["Presiden", "Joko", "Widodo", "tiba", "di", "Bandung", "."]
    with sample.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["index", "question", "passage", "seq_label"])
        writer.writerow([0, str(["Siapa", "presiden", "?"]), str(passage), str(["O", "B", "I", "O", "O", "O", "O"])])
        writer.writerow([1, str(["Ke", "mana", "?"]), str(passage), str(["O", "O", "O", "O", "O", "B", "O"])])
        writer.writerow([2, str(["Apa", "?"]), str(["Lain", "."]), str(["B", "O"])])
    docs, items = facqa.load(("valid",), files={"valid": sample})
    assert [d.text for d in docs] == ["Presiden Joko Widodo tiba di Bandung .", "Lain ."]
    rows = items["valid"]
    assert [r.question for r in rows] == ["Siapa presiden ?", "Ke mana ?", "Apa ?"]
    assert [r.answers for r in rows] == [("Joko Widodo",), ("Bandung",), ("Lain",)]
    assert rows[0].doc_id == rows[1].doc_id != rows[2].doc_id  # one document per unique passage


def test_tanya_eval_on_the_seed_set_writes_a_report_with_plots(tmp_path: Path, model_dir: Path) -> None:
    out = tmp_path / "report"
    result = run_cli("eval", "--sets", "seed", "--out", str(out), "-q", "--traces", home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    assert "seed" in result.stdout and "Indonesian" in result.stdout and "English" in result.stdout
    summaries = json.loads((out / "summary.json").read_text())
    summary = summaries["seed"]
    assert summaries["seed (no reader)"]["all"]["questions"] == summary["all"]["questions"]  # side by side
    assert summary["all"]["questions"] >= 44
    assert summary["all"]["offsets_exact"] == 1.0
    assert summary["id"]["correct"] >= 0.9  # the floor of tests/test_quality.py
    assert set(summary["all"]["retrieval"]) == {"bm25", "dense", "rrf", "hybrid", "pipeline"}
    for png in ("recall_at_k.png", "refusal.png", "latency.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in (out / "report.md").read_text()
    answers = [json.loads(line) for line in (out / "answers.jsonl").read_text().splitlines()]
    assert len([a for a in answers if a["set"] == "seed"]) == summary["all"]["questions"]

    # The reader's bench decides again from the traces, through the same functions: the same figures.
    from eval import reader_bench

    assert reader_bench.main([str(out / "traces.jsonl"), "--out", str(tmp_path / "bench")]) == 0
    bench = json.loads((tmp_path / "bench" / "summary.json").read_text())["seed"]
    for lang in ("all", "id", "en"):
        for key, theirs in (("answer_in_first_citation", "answer_in_first_citation"),
                            ("short_answer_f1", "short_answer_f1"), ("answerable_refused", "answerable_refused"),
                            ("unanswerable_refused", "refusal_recall")):
            assert bench[lang][key] == pytest.approx(summary[lang][theirs], abs=1e-9), (lang, key)
    assert (tmp_path / "bench" / "refusal_curves.png").read_bytes()[:4] == b"\x89PNG"


def test_tanya_eval_with_a_user_gold_file_and_corpus(tmp_path: Path, model_dir: Path) -> None:
    gold_file = tmp_path / "mine.jsonl"
    rows = [{"id": "m1", "question": "Berapa banyak pelanggaran kesepakatan yang telah direkam?", "lang": "id",
             "doc": KIRBY_DOC, "evidence": None, "answer": ["477"], "answerable": True},
            {"id": "m2", "question": "Siapa pemenang Piala Dunia 2014 di Brasil?", "lang": "id", "doc": None,
             "evidence": None, "answer": [], "answerable": False}]
    gold_file.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / f"{KIRBY_DOC}.txt").write_text((CORPUS / f"{KIRBY_DOC}.txt").read_text())
    out = tmp_path / "report"
    result = run_cli("eval", "--gold", str(gold_file), "--corpus", str(corpus), "--out", str(out), "-q",
                     home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())["mine"]["all"]
    assert summary["questions"] == 2 and summary["correct"] == 1.0


@pytest.mark.parametrize("args", [("--sets", "nope"), ("--corpus", "corpus"), ("--gold", "missing.jsonl")])
def test_eval_bad_arguments_fail_with_a_reason(tmp_path: Path, args: tuple[str, ...]) -> None:
    result = run_cli("eval", *args, "--out", str(tmp_path / "r"), home=tmp_path / "home")
    assert result.returncode == 1
    assert result.stderr.startswith("tanya: error:") and "Traceback" not in result.stderr


def test_the_follow_up_chains_are_sound_and_twinned() -> None:
    """Every gold evidence and answer of the follow-up set is in its article, every chain's later questions
    follow the one before in the same language, and each Indonesian chain has its English twin."""
    from eval.gold import load_gold
    from eval.suite import CLICKID_SAMPLE, FOLLOWUPS_GOLD
    from index.documents import read_paths

    texts = {d.doc_id: d.text for d in read_paths([CORPUS, CLICKID_SAMPLE])}
    questions = load_gold(FOLLOWUPS_GOLD)
    by_id = {q.id: q for q in questions}
    for q in questions:
        assert isinstance(q.doc, str) and q.evidence in texts[q.doc], q.id
        assert any(a in texts[q.doc] for a in q.answer), q.id
        if q.follows is not None:
            assert by_id[q.follows].lang == q.lang and by_id[q.follows].doc == q.doc, q.id
    follow_ups = {lang: [q.id.replace(f"-{lang}-", "-") for q in questions if q.follows and q.lang == lang]
                  for lang in ("id", "en")}
    assert follow_ups["id"] == follow_ups["en"] and len(follow_ups["id"]) == 16


def test_a_quick_look_asks_the_first_questions_of_each_language() -> None:
    from eval.gold import GoldQuestion
    from eval.runner import first_of_each_language

    questions = [GoldQuestion(f"{lang}{i}", "?", lang, None, None, [], True) for lang in ("id", "en") for i in range(5)]
    assert [q.id for q in first_of_each_language(questions, 2)] == ["id0", "id1", "en0", "en1"]
