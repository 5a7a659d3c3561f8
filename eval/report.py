"""The eval report: a table on the terminal, and a folder with ``report.md``, PNG plots,
``summary.json`` and every answer in ``answers.jsonl``."""

from __future__ import annotations

import json
import platform
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt
import numpy as np

from eval.suite import MODES, NO_READER, QuestionRun
from index.onnx_embedder import describe_instruction_sets
from rag.params import Params

LANG_NAMES = {"all": "all", "id": "Indonesian", "en": "English"}


def pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.0f} ms"


SUMMARY_COLUMNS = [
    ("questions", "questions", str),
    ("correct", "correct", pct),
    ("gold_cited_first", "gold doc cited first", pct),
    ("gold_sentence_cited", "gold sentence cited", pct),
    ("answer_in_citations", "answer in citations", pct),
    ("answer_in_first_citation", "answer in 1st citation", pct),
    ("refusal_recall", "unanswerable refused", pct),
    ("answerable_refused", "answerable refused", pct),
    ("refusal_precision", "refusal precision", pct),
    ("short_answer_em", "short answer EM", pct),
    ("short_answer_f1", "short answer F1", pct),
    ("squad2_f1", "F1 (SQuAD 2.0)", pct),
    ("offsets_exact", "offsets exact", pct),
    ("latency_p50_ms", "p50", ms),
    ("latency_p95_ms", "p95", ms),
]


def summary_rows(summaries: dict[str, dict[str, dict]]) -> tuple[list[str], list[list[str]]]:
    header = ["set", "lang"] + [title for _, title, _ in SUMMARY_COLUMNS]
    rows = []
    for set_name, by_lang in summaries.items():
        for lang, s in by_lang.items():
            refusal_known = s["unanswerable"] > 0
            cells = []
            for key, _, fmt in SUMMARY_COLUMNS:
                value = s.get(key)
                if key in ("refusal_recall", "refusal_precision") and not refusal_known:
                    value = None
                if key in ("gold_cited_first", "gold_sentence_cited", "answer_in_citations",
                           "answer_in_first_citation", "answerable_refused", "short_answer_em",
                           "short_answer_f1") and not s["answerable"]:
                    value = None
                cells.append(fmt(value))  # type: ignore[operator]
            rows.append([set_name, LANG_NAMES[lang], *cells])
    return header, rows


GENERATION_COLUMNS = [
    ("asked", "asked the LLM", str),
    ("fell_back", "fell back", pct),
    ("sentences_kept", "sentences kept", pct),
    ("extractive_correct", "extractive correct", pct),
    ("generated_correct", "generated correct", pct),
    ("in_question_language", "in the question's language", pct),
    ("latency_p50_ms", "LLM p50", ms),
    ("latency_p95_ms", "LLM p95", ms),
]


def generation_rows(summaries: dict[str, dict[str, dict]]) -> tuple[list[str], list[list[str]]]:
    """Generated against extractive answers, where an LLM was asked (``tanya eval --llm-url``)."""
    header = ["set", "lang"] + [title for _, title, _ in GENERATION_COLUMNS]
    rows = [[set_name, LANG_NAMES[lang], *(fmt(s["generation"].get(key)) for key, _, fmt in GENERATION_COLUMNS)]  # type: ignore[operator]
            for set_name, by_lang in summaries.items() for lang, s in by_lang.items() if s.get("generation")]
    return header, rows


def terminal_table(summaries: dict[str, dict[str, dict]]) -> str:
    text = aligned(*summary_rows(summaries))
    header, rows = generation_rows(summaries)
    return text + ("\n\n" + aligned(header, rows) if rows else "")


def aligned(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    line = lambda cells: "  ".join(c.rjust(w) if i > 1 else c.ljust(w)  # noqa: E731
                                   for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])


def markdown_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def retrieval_rows(summaries: dict[str, dict[str, dict]]) -> tuple[list[str], list[list[str]]]:
    header = ["set", "lang", "mode", "R@1", "R@5", "R@10", "MRR@10"]
    rows = []
    for set_name, by_lang in summaries.items():
        for lang, s in by_lang.items():
            for mode, m in s["retrieval"].items():
                rows.append([set_name, LANG_NAMES[lang], mode] + [f"{m[k]:.3f}" for k in ("R@1", "R@5", "R@10",
                                                                                          "MRR@10")])
    return header, rows


def plot_recall(runs_by_set: dict[str, list[QuestionRun]], path: Path) -> None:
    groups = [(name, lang, [r for r in runs if r.gold.lang == lang and r.ranks])
              for name, runs in runs_by_set.items() for lang in ("id", "en")]
    groups = [g for g in groups if g[2]]
    fig, axes = plt.subplots(1, len(groups), figsize=(4.2 * len(groups), 3.6), squeeze=False, sharey=True)
    ks = np.arange(1, 11)
    for ax, (name, lang, runs) in zip(axes[0], groups, strict=True):
        for mode in MODES:
            ranks = [r.ranks.get(mode) for r in runs]
            ax.plot(ks, [np.mean([x is not None and x <= k for x in ranks]) for k in ks], marker="o", ms=3,
                    label=mode, lw=2.2 if mode in ("hybrid", "pipeline") else 1.2)
        ax.set_title(f"{name} · {LANG_NAMES[lang]} ({len(runs)} q.)")
        ax.set_xlabel("k (documents)")
        ax.set_xticks(ks)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("recall@k of the gold document")
    axes[0][-1].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def refusal_curve(runs: list[QuestionRun], thresholds: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refusal precision, recall (unanswerable = positive) and the share of answerable questions refused
    if the threshold were ``t`` (refuse when confidence < t)."""
    conf_ans = np.array([r.answer.confidence for r in runs if r.gold.answerable])
    conf_un = np.array([r.answer.confidence for r in runs if not r.gold.answerable])
    precision, recall, false_refusals = [], [], []
    for t in thresholds:
        tp, fp = float(np.sum(conf_un < t)), float(np.sum(conf_ans < t))
        precision.append(tp / (tp + fp) if tp + fp else 1.0)
        recall.append(tp / len(conf_un) if len(conf_un) else 0.0)
        false_refusals.append(fp / len(conf_ans) if len(conf_ans) else 0.0)
    return np.array(precision), np.array(recall), np.array(false_refusals)


def plot_refusal(runs_by_set: dict[str, list[QuestionRun]], params: Params, path: Path) -> bool:
    groups = [(name, lang, rows) for name, runs in runs_by_set.items() for lang in ("id", "en")
              for rows in [[r for r in runs if r.gold.lang == lang]]
              if any(not r.gold.answerable for r in rows) and any(r.gold.answerable for r in rows)]
    if not groups:
        return False
    cols = min(4, len(groups))  # with and without the reader, per set and language: wrap into rows
    rows = -(-len(groups) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.6 * rows), squeeze=False, sharey=True)
    thresholds = np.linspace(0, 1, 101)
    for ax in axes.flat[len(groups):]:
        ax.set_visible(False)
    for ax, (name, lang, runs) in zip(axes.flat, groups, strict=False):
        precision, recall, false_refusals = refusal_curve(runs, thresholds)
        ax.plot(thresholds, recall, label="unanswerable refused (recall)")
        ax.plot(thresholds, precision, label="refusal precision")
        ax.plot(thresholds, false_refusals, label="answerable refused")
        scoring = params.for_language(lang)
        chosen = scoring.refusal_threshold if name.endswith(NO_READER) else scoring.reader_refusal_threshold
        ax.axvline(chosen, color="k", ls="--", lw=1)
        ax.annotate(f"chosen {chosen:.2f}", (chosen, 0.02), xytext=(4, 0), textcoords="offset points", fontsize=8)
        ax.set_title(f"{name} · {LANG_NAMES[lang]}")
        ax.set_xlabel("refusal threshold (refuse when confidence < t)")
        ax.grid(alpha=0.3)
    axes.flat[len(groups) - 1].legend(loc="center right", fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_latency(runs_by_set: dict[str, list[QuestionRun]], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for name, runs in runs_by_set.items():
        values = [r.seconds * 1000 for r in runs]
        ax.hist(values, bins=40, alpha=0.6, label=f"{name} (p50 {np.percentile(values, 50):.0f} ms, "
                                                   f"p95 {np.percentile(values, 95):.0f} ms)")
    ax.set_xlabel("ask latency (ms)")
    ax.set_ylabel("questions")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def failures(runs: list[QuestionRun], limit: int = 15) -> list[str]:
    out = []
    for r in runs:
        if r.correct:
            continue
        got = "refused" if r.answer.abstained else r.answer.answer[:160].replace("|", "/")
        gold = "; ".join(r.gold.answer)[:60] if r.gold.answerable else "(refuse)"
        out.append(f"| {r.gold.id} | {r.gold.lang} | {r.gold.question[:120]} | {gold} | {got} |")
        if len(out) == limit:
            break
    return out


def write_report(out_dir: Path, runs_by_set: dict[str, list[QuestionRun]], summaries: dict[str, dict[str, dict]],
                 descriptions: dict[str, str], params: Params, command: str) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_recall(runs_by_set, out_dir / "recall_at_k.png")
    has_refusal = plot_refusal(runs_by_set, params, out_dir / "refusal.png")
    plot_latency(runs_by_set, out_dir / "latency.png")
    (out_dir / "summary.json").write_text(json.dumps(summaries, indent=2) + "\n", encoding="utf-8")
    with (out_dir / "answers.jsonl").open("w", encoding="utf-8") as handle:
        for name, runs in runs_by_set.items():
            for r in runs:
                handle.write(json.dumps({"set": name, "id": r.gold.id, "lang": r.gold.lang, "correct": r.correct,
                                         "ms": round(r.seconds * 1000, 1), "ranks": r.ranks, **r.answer.to_json()},
                                        ensure_ascii=False) + "\n")
    traced = [(name, r) for name, runs in runs_by_set.items() for r in runs if r.trace is not None]
    if traced:
        with (out_dir / "traces.jsonl").open("w", encoding="utf-8") as handle:
            for name, r in traced:
                gold = {"answerable": r.gold.answerable, "docs": r.gold_docs, "answers": r.gold.answer}
                handle.write(json.dumps({"set": name, "id": r.gold.id, "lang": r.gold.lang, "question": r.gold.question,
                                         "gold": gold, "trace": r.trace}, ensure_ascii=False) + "\n")
    lines = [
        "# Tanya evaluation report",
        "",
        f"`{command}` on {platform.machine()} ({describe_instruction_sets()}; {platform.python_implementation()} "
        f"{platform.python_version()}), {time_stamp()}.",
        "",
        *[f"- **{name}**: {descriptions.get(name, '')}" for name in runs_by_set],
        "",
        "## Answers",
        "",
        "*Correct*: an answerable question is answered (not refused), a citation comes from the gold document "
        "and the cited sentences hold a gold answer string; an unanswerable one is refused. *Gold doc cited "
        "first*: the first citation is from the gold document. *Gold sentence cited*: a citation from the gold "
        "document holds the gold evidence (or the answer). Refusal precision/recall treat unanswerable "
        "questions as the positive class.",
        "",
        markdown_table(*summary_rows(summaries)),
        "",
        "## Retrieval",
        "",
        "Rank of the gold document among distinct documents, answerable questions. *pipeline* = what the "
        "reader sees: the cited documents first, then the rest of the hybrid ranking (a refusal counts as "
        "not found).",
        "",
        markdown_table(*retrieval_rows(summaries)),
        "",
        "![recall@k per mode](recall_at_k.png)",
        "",
    ]
    if has_refusal:
        lines += ["## Refusal", "", "How the refusal rates move with the threshold; the dashed line is the "
                  "threshold in `rag/params.json`.", "", "![refusal against threshold](refusal.png)", ""]
    lines += ["## Latency", "", "![latency histogram](latency.png)", ""]
    generation_header, generation_table = generation_rows(summaries)
    if generation_table:
        lines += ["## Generated answers", "", "The LLM's answer over the cited sentences, each of its sentences "
                  "checked against them (rag/generation/check.py). *Fell back*: nothing passed the check, or the "
                  "endpoint failed, so the extractive answer is shown. *Generated correct*: as *correct*, with "
                  "the shown text (generated, or the extractive one after a fall-back) holding the gold answer.",
                  "", markdown_table(generation_header, generation_table), ""]
    lines += ["## Follow-up questions", ""]
    for name, by_lang in summaries.items():
        s = by_lang["all"]
        if s["followups_correct"] is not None:
            per_language = "; ".join(f"{LANG_NAMES[lang]} {pct(by_lang[lang]['followups_correct'])}"
                                     for lang in ("id", "en")
                                     if lang in by_lang and by_lang[lang]["followups_correct"] is not None)
            written_out = (f"; the same questions written out in full {pct(s['followups_written_out_correct'])}"
                           if s["followups_written_out_correct"] is not None else "")
            lines.append(f"- {name}: follow-ups correct {pct(s['followups_correct'])} ({per_language}){written_out}.")
    lines += ["", "## Misses (first 15 per set)", ""]
    for name, runs in runs_by_set.items():
        rows = failures(runs)
        if rows:
            lines += [f"### {name}", "", "| id | lang | question | gold | answer |", "|---|---|---|---|---|",
                      *rows, ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def time_stamp() -> str:
    import datetime as dt

    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
