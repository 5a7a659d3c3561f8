"""The reader's bench: a reader scored on exactly the sentences the served pipeline hands it, in minutes.

Once, the pipeline's own traces with their gold answers (FacQA valid in both languages with its
not-in-the-corpus questions, IDK-MRC valid with its unanswerable ones):

    tanya eval --sets facqa,idk --no-baseline --traces --out .cache/bench-traces

then, for the shipped reader, another weights folder (``eval.train_reader --export``), or a training
run's checkpoint:

    python -m eval.reader_bench .cache/bench-traces/traces.jsonl [--weights FOLDER | --checkpoint RUN/checkpoint.pt]

Each question's sentences are read again by that reader (its graph composed as it would ship) and
decided by rag/evidence.py's own choice and refusal model with rag/params.json. Retrieval is not run
again, so a reader is judged on the candidates it will be served. For the reader that made the traces the
figures equal `tanya eval`'s (tests/test_eval.py). Figures per set and language: the answer in the first
citation, short-answer F1, answerable and unanswerable questions refused, and each set's refusal curve as
the threshold moves (``--out``: summary.json and refusal_curves.png).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

import index  # noqa: F401  (offline switches first)
from eval.metrics import contains_answer, token_f1
from rag.evidence import choose_reading
from rag.params import Params
from rag.reader.inference import Reader

THRESHOLDS = np.round(np.linspace(0.0, 1.0, 101), 2)


@dataclass(frozen=True)
class Decided:
    """One traced question as a reader decides it."""

    set: str
    lang: str  # the gold set's label, for grouping
    decided_in: str  # the language the pipeline detected: which threshold applies
    answerable: bool
    read: bool  # the reader found something to read (otherwise the pipeline refuses, whatever the threshold)
    probability: float  # P(answerable) for the sentence the reader would cite first
    first_holds_answer: bool  # that sentence holds a gold answer
    short_f1: float  # of the reader's span there, against the gold answers (0 without a span)

    def answered(self, threshold: float) -> bool:
        return self.read and self.probability >= threshold


def decide(record: dict, reader: Reader, params: Params) -> Decided:
    trace, gold = record["trace"], record["gold"]
    scoring = params.for_language(trace["language"])
    read = trace["read"]
    probability, holds, f1, found = 0.0, False, 0.0, False
    if read:  # no candidate sentence at all: a refusal
        texts = [row["text"] for row in read]
        readings = reader.read(trace["query"], texts)
        best, probability = choose_reading(readings, [row["retrieval_score"] for row in read], scoring,
                                           trace["decide"]["retrieval_confidence"])
        reading = readings[best]
        found = reading is not None
        holds = contains_answer(texts[best], gold["answers"])
        if reading is not None and reading.end > reading.start:
            f1 = token_f1(texts[best][reading.start : reading.end], gold["answers"])
    return Decided(record["set"], record["lang"], trace["language"], gold["answerable"], found, probability, holds,
                   f1)


def rates(rows: list[Decided], threshold: float | None, params: Params) -> dict[str, float | int | None]:
    """As `tanya eval` counts them (eval/suite.py): an answerable question counts only when answered."""

    def at(row: Decided) -> float:
        return threshold if threshold is not None else params.for_language(row.decided_in).reader_refusal_threshold

    answerable = [r for r in rows if r.answerable]
    unanswerable = [r for r in rows if not r.answerable]

    def share(flags: list[bool]) -> float | None:
        return sum(flags) / len(flags) if flags else None

    return {
        "questions": len(rows),
        "answer_in_first_citation": share([r.answered(at(r)) and r.first_holds_answer for r in answerable]),
        "short_answer_f1": float(np.mean([r.short_f1 if r.answered(at(r)) else 0.0 for r in answerable]))
        if answerable else None,
        "answerable_refused": share([not r.answered(at(r)) for r in answerable]),
        "unanswerable_refused": share([not r.answered(at(r)) for r in unanswerable]),
    }


def summarize(rows: list[Decided], params: Params) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for name in sorted({r.set for r in rows}):
        in_set = [r for r in rows if r.set == name]
        out[name] = {lang: rates(group, None, params)
                     for lang, group in (("all", in_set), *((lang, [r for r in in_set if r.lang == lang])
                                                            for lang in ("id", "en"))) if group}
        out[name]["curve"] = [{"threshold": float(t), **rates(in_set, float(t), params)} for t in THRESHOLDS]
    return out


def plot_curves(summary: dict[str, dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4.5))
    for name, figures in summary.items():
        curve = [c for c in figures["curve"] if c["unanswerable_refused"] is not None]
        if curve:
            line, = ax.plot([c["unanswerable_refused"] for c in curve],
                            [c["answer_in_first_citation"] for c in curve], label=name)
            shipped = figures["all"]  # at rag/params.json's thresholds (one per language)
            if shipped["unanswerable_refused"] is not None:
                ax.plot(shipped["unanswerable_refused"], shipped["answer_in_first_citation"], "o",
                        color=line.get_color())
    ax.set_xlabel("unanswerable questions refused")
    ax.set_ylabel("answerable: answer in the first citation")
    ax.set_title("Refusal threshold from 0 to 1 (dots: rag/params.json's)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_reader(model_dir: Path, weights: Path | None, checkpoint: Path | None, scratch: Path) -> Reader:
    """The shipped reader, or the graph composed from other weights in a scratch copy of the model
    folder (the provisioned e5 linked, not copied)."""
    from rag.reader.model import compose

    if checkpoint is not None:
        from eval.train_reader import export_weights

        weights = export_weights(checkpoint, scratch / "weights").parent
    if weights is None:
        compose(model_dir)
        return Reader(model_dir)
    model = scratch / "model"
    model.mkdir()
    for entry in model_dir.iterdir():
        if entry.name != "reader":
            (model / entry.name).symlink_to(entry)
    compose(model, weights)
    return Reader(model, folder=weights)


def table(summary: dict[str, dict]) -> str:
    lines = ["set     lang  questions  answer in 1st citation  short answer F1  answerable refused  "
             "unanswerable refused"]

    def pct(value: float | None) -> str:
        return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.1f}%"

    for name, figures in summary.items():
        for lang in ("all", "id", "en"):
            if lang in figures:
                f = figures[lang]
                lines.append(f"{name:<7} {lang:<5} {f['questions']:>9}  {pct(f['answer_in_first_citation']):>22}  "
                             f"{pct(f['short_answer_f1']):>15}  {pct(f['answerable_refused']):>18}  "
                             f"{pct(f['unanswerable_refused']):>20}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from index.home import DataHome

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("traces", type=Path, help="traces.jsonl from `tanya eval --traces`")
    chosen = parser.add_mutually_exclusive_group()
    chosen.add_argument("--weights", type=Path, help="a reader weights folder (weights.safetensors, reader.json)")
    chosen.add_argument("--checkpoint", type=Path, help="a training run's checkpoint.pt")
    parser.add_argument("--out", type=Path, help="write summary.json and refusal_curves.png here")
    args = parser.parse_args(argv)
    if not args.traces.is_file():
        print(f"reader_bench: {args.traces}: no such file (make it with `tanya eval --traces`)", file=sys.stderr)
        return 1
    records = [json.loads(line) for line in args.traces.read_text(encoding="utf-8").splitlines()]
    params = Params.load()
    with tempfile.TemporaryDirectory(prefix="tanya-bench-") as scratch:
        reader = load_reader(DataHome.resolve().model_dir, args.weights, args.checkpoint, Path(scratch))
        rows = [decide(r, reader, params) for r in tqdm(records, desc="reading", file=sys.stderr, dynamic_ncols=True)]
    summary = summarize(rows, params)
    print(table(summary))
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        plot_curves(summary, args.out / "refusal_curves.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
