"""Orchestration of ``tanya eval``: build the chosen sets, ask them, print the table, write the report."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from eval.gold import GoldQuestion
from eval.report import terminal_table, write_report
from eval.suite import (
    NO_READER,
    EvalSet,
    custom_set,
    facqa_set,
    followups_set,
    idk_set,
    run_set,
    seed_set,
    summarize_by_language,
)
from index.errors import InputError
from index.filters import DocumentFilter
from index.home import DataHome
from rag.generation.client import LLMClient, LLMSettings
from rag.params import Params
from rag.tanya import Tanya

BUILT_IN_SETS = ("seed", "followups", "facqa", "idk")


def first_of_each_language(questions: list[GoldQuestion], limit: int) -> list[GoldQuestion]:
    """The first ``limit`` questions of each language, in their order (FacQA lists every Indonesian
    question before the English ones: a plain cut would ask no English question)."""
    seen: dict[str, int] = {}
    kept = []
    for q in questions:
        seen[q.lang] = seen.get(q.lang, 0) + 1
        if seen[q.lang] <= limit:
            kept.append(q)
    return kept


def evaluate(home: DataHome, sets: list[str], out_dir: Path | None, gold: Path | None = None,
             corpus: Path | None = None, limit: int | None = None, command: str = "tanya eval",
             progress: bool = True, baseline: bool = True, doc_filter: DocumentFilter | None = None,
             llm: LLMSettings | None = None, traces: bool = False) -> Path:
    """``baseline``: ask every set a second time without the reader, reported side by side. ``doc_filter``:
    every question is asked under it (questions whose documents it leaves out count as not in the corpus).
    ``llm``: every answer also gets a generated one (not in the baseline), compared with the extractive.
    ``traces``: also write every question's pipeline trace with its gold answer (``traces.jsonl``, what
    eval/reader_bench.py scores a reader on)."""
    unknown = [s for s in sets if s not in BUILT_IN_SETS]
    if unknown:
        raise InputError(f"unknown set(s) {', '.join(unknown)}; choose from {', '.join(BUILT_IN_SETS)}")
    if corpus is not None and gold is None:
        raise InputError("--corpus needs --gold (the questions to ask about it)")
    for path in (gold, corpus):
        if path is not None and not path.exists():
            raise InputError(f"{path}: no such file or folder")
    eval_root = home.root / "eval"
    out_dir = out_dir or eval_root / "reports" / time.strftime("%Y%m%d-%H%M%S")
    model_dir = home.model_dir
    from index.model import provision

    provision(model_dir)  # no-op when present
    built: list[EvalSet] = []
    if "seed" in sets:
        built.append(seed_set(eval_root, model_dir))
    if "followups" in sets:
        built.append(followups_set(eval_root, model_dir))
    if "facqa" in sets:
        built.append(facqa_set(eval_root, model_dir))
    if "idk" in sets:
        built.append(idk_set(eval_root, model_dir))
    if gold is not None:
        user_index = Tanya.open(home.root, home.chroma_url) if corpus is None else None
        built.append(custom_set(gold, corpus, eval_root, model_dir, user_index))
    if limit is not None:  # a quick look: the first questions of each part, in each language
        for s in built:
            s.parts = [(tanya, first_of_each_language(questions, limit)) for tanya, questions in s.parts]
    runs = {}
    for s in built:
        for use_reader in (True, False) if baseline else (True,):
            for tanya, _ in s.parts:
                tanya.use_reader = use_reader
                tanya.llm = LLMClient(llm) if llm and use_reader else None
            runs[s.name + ("" if use_reader else NO_READER)] = run_set(s, progress, doc_filter,
                                                                         traces and use_reader)
    summaries = {name: summarize_by_language(rows) for name, rows in runs.items() if rows}
    print(terminal_table(summaries))
    described = f" Asked under the filter {doc_filter.describe()}." if doc_filter else ""
    report = write_report(out_dir, runs, summaries, {s.name: s.description + described for s in built},
                          Params.load(), command)
    print(f"\nreport: {report}", file=sys.stderr)
    return report
