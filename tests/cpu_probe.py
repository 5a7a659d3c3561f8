"""What Tanya's two ONNX graphs (the embedder and the reader) compute on a fixed handful of inputs, for
tests/test_cpu_independence.py, which runs this once natively and once on an emulated AVX2-only CPU and
compares the two.

    python -m tests.cpu_probe MODEL_DIR OUT.npz

Inputs: seed questions (eval/data/seed_gold.jsonl) and the corpus/ sentences that hold their evidence,
read and embedded by the product's own classes (the embedder and the reader), nothing re-implemented.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

import index  # noqa: F401  (offline switches before anything heavy)
from index.embedder import PASSAGE_PROMPT, QUERY_PROMPT
from index.onnx_embedder import OnnxE5Embedding
from index.sentences import split_sentences
from rag.reader.inference import Reader

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = 6  # answerable seed questions
# Emulated, the cost is proportional to the tokens computed (qemu runs the kernels in software): the int8
# embedder ~0.1 s a token, the reader's fp32 arithmetic more. So the probe takes the cases with the shortest
# question and evidence, embeds the evidence sentences only, and reads one of them: ~1.5 min of one core.
READINGS = 1
THREADS = 1  # emulated, it runs beside the test suite: one core of two


def probe_inputs() -> list[tuple[str, str]]:
    """(question, the corpus/ sentence that holds its evidence) for the answerable seed questions with the
    shortest question and evidence, each sentence once."""
    cases: dict[str, str] = {}
    for line in (ROOT / "eval" / "data" / "seed_gold.jsonl").read_text(encoding="utf-8").splitlines():
        gold = json.loads(line)
        if not gold.get("answerable") or not gold.get("evidence") or not isinstance(gold["doc"], str):
            continue
        text = (ROOT / "corpus" / f"{gold['doc']}.txt").read_text(encoding="utf-8")
        sentences = [text[s.start : s.end] for s in split_sentences(text)]
        sentence = next(sentence for sentence in sentences if gold["evidence"] in sentence)
        cases.setdefault(sentence, gold["question"])
    shortest = sorted(cases.items(), key=lambda case: (len(case[0]) + len(case[1]), case))
    return [(question, sentence) for sentence, question in shortest[:QUESTIONS]]


def probe(model_dir: Path) -> dict[str, Any]:  # name -> np.ndarray
    cases = probe_inputs()
    embedder = OnnxE5Embedding(model_dir, QUERY_PROMPT, PASSAGE_PROMPT, threads=THREADS)
    passages = embedder.encode([PASSAGE_PROMPT + sentence for _, sentence in cases])
    queries = embedder.encode([QUERY_PROMPT + question for question, _ in cases])
    reader = Reader(model_dir, threads=THREADS)
    readings = [r for question, sentence in cases[:READINGS] for r in reader.read(question, [sentence])
                if r is not None]
    return {"passages": passages, "queries": queries,
            "answerable": np.array([r.answerable for r in readings]),
            "span_margin": np.array([r.span_margin for r in readings]),
            "spans": np.array([[r.start, r.end] for r in readings])}


if __name__ == "__main__":
    np.savez(sys.argv[2], **probe(Path(sys.argv[1])))
