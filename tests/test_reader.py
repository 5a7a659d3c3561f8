"""The reader: shipped weights checked and composed offline, short answers exact and inside the first
citation through the Python API, the CLI and HTTP, on-topic questions the corpus cannot answer refused,
and the trainer exercised end to end on a few examples."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from eval.gold import GoldQuestion
from eval.suite import EvalSet, run_set, summarize
from rag.reader.model import SHIPPED, WEIGHTS_FILE, ReaderUnavailable, check_shipped
from rag.tanya import Tanya
from tests.helpers import REPO, THOMAS_DOC, run_cli


def assert_exact(tanya: Tanya, answer) -> None:
    short = answer.short_answer
    assert short is not None and short.text.strip()
    text = tanya.document(short.doc_id).text
    assert text[short.start : short.end] == short.text
    first = answer.citations[0]
    assert short.doc_id == first.doc_id and first.start <= short.start < short.end <= first.end
    for c in answer.citations:
        assert tanya.document(c.doc_id).text[c.start : c.end] == c.sentence


@pytest.mark.parametrize(("question", "doc", "expected"), [
    ("Siapa juru bicara Central Command AS?", THOMAS_DOC, ["Thomas"]),
    ("Berapa orang tewas dalam serangan terhadap konvoi bantuan?", THOMAS_DOC, ["20"]),
    ("How many people died in the attack on the aid convoy?", THOMAS_DOC, ["20"]),
])
def test_short_answer_is_exact_and_inside_the_first_citation(seed_tanya: Tanya, question: str, doc: str,
                                                             expected: list[str]) -> None:
    answer = seed_tanya.ask(question)
    assert not answer.abstained, answer.answer
    assert_exact(seed_tanya, answer)
    assert answer.citations[0].doc_id == doc
    assert any(e in answer.short_answer.text for e in expected), answer.short_answer  # type: ignore[union-attr]


# On the seed articles' topics (Syria, US-Russia talks, September 2016), answered nowhere in them.
ON_TOPIC_UNANSWERABLE = [
    "Berapa umur John Kirby?",
    "Di kota mana John Thomas dilahirkan?",
    "Siapa nama istri Sergei Lavrov?",
    "Berapa jumlah tentara Rusia yang ditempatkan di Suriah pada tahun 2016?",
    "Kapan Bashar al-Assad pertama kali menjadi presiden?",
    "Siapa pelatih tim sepak bola nasional Suriah?",
    "What is the name of John Kirby's wife?",
    "How many Russian soldiers were stationed in Syria in 2016?",
    "In which city was John Thomas born?",
    "Who won the 2016 Syrian parliamentary election in Aleppo?",
]


def test_on_topic_questions_the_corpus_cannot_answer_are_refused(seed_tanya: Tanya) -> None:
    questions = [GoldQuestion(f"u{i}", q, "en" if q.startswith(("What", "How", "In", "Who")) else "id",
                              None, None, [], False) for i, q in enumerate(ON_TOPIC_UNANSWERABLE)]
    runs = run_set(EvalSet("on-topic", [(seed_tanya, questions)]), progress=False)
    answered = [f"{r.gold.question} -> {r.answer.answer[:90]}" for r in runs if not r.answer.abstained]
    # 7 of 10 refused at the shipped threshold (2026-12-02; 10 of 10 at the first fit's 0.39, which refused
    # 18% of FacQA's answerable questions): the floor catches a reader that stops refusing.
    assert summarize(runs)["refusal_recall"] >= 0.7, answered


def test_cli_and_http_carry_the_short_answer(seed_home: Path, seed_server: str, tmp_path: Path) -> None:
    home = tmp_path / "home"  # a copy: this process holds the seed home's embedded Chroma
    shutil.copytree(seed_home, home, ignore=shutil.ignore_patterns("index.lock"))
    question = "Siapa juru bicara Central Command AS?"
    done = run_cli("ask", "--json", "-", home=home, stdin=question + "\n")
    assert done.returncode == 0, done.stderr
    cli = json.loads(done.stdout)
    request = urllib.request.Request(f"{seed_server}/api/ask", data=json.dumps({"question": question}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        http = json.loads(response.read())
    assert cli["short_answer"] == http["short_answer"] and cli["short_answer"]["text"]
    short = cli["short_answer"]
    text = (REPO / "corpus" / f"{short['doc_id']}.txt").read_text(encoding="utf-8")
    assert text[short["start"] : short["end"]] == short["text"]
    refused = json.loads(run_cli("ask", "--json", "-", home=home, stdin="Berapa umur John Kirby?\n").stdout)
    assert refused["abstained"] and refused["short_answer"] is None


def test_the_shipped_weights_match_their_manifest() -> None:
    meta = check_shipped(SHIPPED)
    assert (SHIPPED / WEIGHTS_FILE).stat().st_size == meta["weights_bytes"] <= 50_000_000


def test_damaged_or_missing_weights_give_a_clear_message(tmp_path: Path, model_dir: Path) -> None:
    damaged = tmp_path / "reader"
    shutil.copytree(SHIPPED, damaged)
    weights = damaged / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, one byte flipped
    weights.write_bytes(bytes(data))
    with pytest.raises(ReaderUnavailable, match="sha256"):
        check_shipped(damaged)
    weights.write_bytes(bytes(data[:1000]))
    with pytest.raises(ReaderUnavailable, match="bytes"):
        check_shipped(damaged)
    weights.unlink()
    # Through the CLI: `tanya provision` with the reader folder pointed at the broken copy.
    model_copy = tmp_path / "model"
    shutil.copytree(model_dir, model_copy, ignore=shutil.ignore_patterns("reader"))
    done = run_cli("provision", home=tmp_path / "home",
                   env={"TANYA_READER_DIR": str(damaged), "TANYA_MODEL_DIR": str(model_copy)})
    assert done.returncode == 1
    assert "Traceback" not in done.stderr and "reader's weights" in done.stderr and "missing" in done.stderr


def test_a_short_training_run_exercises_the_trainer(tmp_path: Path, model_dir: Path) -> None:
    """Build examples, train two steps, export: the weights pass the loader's size and hash check."""
    from eval.reader_data import ReaderExample, save

    passage = ("Juru bicara Departemen Luar Negeri AS John Kirby mengatakan tidak ada rencana kerja sama militer. "
               "Ia berbicara di Washington pada hari Senin.")
    examples = [ReaderExample("Siapa juru bicara Departemen Luar Negeri AS?", passage, passage.find("John Kirby"),
                              "John Kirby", "test"),
                ReaderExample("Di mana Kirby berbicara?", passage, passage.find("Washington"), "Washington", "test"),
                ReaderExample("Berapa umur Kirby?", passage, None, None, "test-unans")] * 4
    save(examples, tmp_path / "train.jsonl")
    run_dir, out = tmp_path / "run", tmp_path / "reader"
    base = [sys.executable, "-m", "eval.train_reader", "--examples", str(tmp_path / "train.jsonl"),
            "--run-dir", str(run_dir)]
    train = subprocess.run([*base, "--max-steps", "2", "--batch-size", "4", "--epochs", "1"],
                           capture_output=True, text=True, cwd=REPO, timeout=600)
    assert train.returncode == 0, train.stderr[-2000:]
    assert "training the reader" in train.stderr  # progress is shown
    losses = [json.loads(line) for line in (run_dir / "loss.jsonl").read_text().splitlines()]
    assert losses and losses[-1]["step"] == 2
    export = subprocess.run([*base, "--export", str(out)], capture_output=True, text=True, cwd=REPO, timeout=600)
    assert export.returncode == 0, export.stderr[-2000:]
    meta = check_shipped(out)
    assert meta["training"]["steps"] == 2 and meta["training"]["seed"] == 13


def test_the_ranking_stage_trains_on_candidate_groups_from_the_shipped_weights(tmp_path: Path, model_dir: Path
                                                                                ) -> None:
    """Two steps of the ranking stage over candidate groups, starting from rag/reader's fp16 weights: the
    loss log carries the listwise term, and the exported weights pass the loader's check."""
    from eval.reader_data import CandidateGroup, answer_span, load_groups, save
    from rag.reader.model import SHIPPED

    sentences = ["Juru bicara Departemen Luar Negeri AS John Kirby mengatakan tidak ada rencana kerja sama.",
                 "Pernyataan juru bicara itu menanggapi Menteri Luar Negeri Rusia Sergei Lavrov.",
                 "Ia berbicara di Washington pada hari Senin."]
    groups = [CandidateGroup("Siapa juru bicara Departemen Luar Negeri AS?", sentences,
                             [answer_span(sentences[0], "John Kirby"), None, None], "test"),
              CandidateGroup("Berapa umur Kirby?", sentences, [None, None, None], "test-unans")] * 2
    assert groups[0].spans[0] == [sentences[0].find("John Kirby"), sentences[0].find("John Kirby") + 10]
    save(groups, tmp_path / "groups.jsonl")
    assert load_groups(tmp_path / "groups.jsonl") == groups
    run_dir = tmp_path / "run"
    train = subprocess.run([sys.executable, "-m", "eval.train_reader", "--groups", str(tmp_path / "groups.jsonl"),
                            "--init-from", str(SHIPPED / "weights.safetensors"), "--run-dir", str(run_dir),
                            "--max-steps", "2", "--batch-size", "4", "--epochs", "2", "--checkpoint-every", "1"],
                           capture_output=True, text=True, cwd=REPO, timeout=600)
    assert train.returncode == 0, train.stderr[-2000:]
    losses = [json.loads(line) for line in (run_dir / "loss.jsonl").read_text().splitlines()]
    assert losses[-1]["step"] == 2 and losses[-1]["rank"] > 0
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["groups"] == str(tmp_path / "groups.jsonl") and meta["examples"] == 4
