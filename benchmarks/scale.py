"""The cost of growth: indexing, question latency, memory and start-up at several corpus sizes.

    python benchmarks/scale.py ARTICLES.jsonl [--sizes 1000,10000,100000] [--work DIR] [--out DIR]

ARTICLES.jsonl: real news, one {"id", "text", "title"?} per line (``make bench`` passes the CLICK-ID
articles from ../shared/data; the repo does not carry them). Each size takes the file's first articles
until it holds that many chunks; the indexes are built once under ``--work`` and reused, so a run that
was stopped resumes where it was (only the new part is timed).

Per size it measures, on the machine it runs on:
- indexing throughput of the part built in this run;
- ``ask`` and ``retrieve`` latency (FacQA valid questions, Indonesian and English) through the Python
  API, with embedded Chroma and with the same vectors served by ``chroma run``; ``ask`` under a publisher
  filter and a date-range filter (``bench_filters``), against the unfiltered ``ask``;
- ``tanya serve``: seconds from start to the chat page, and RSS after answering questions over HTTP;
- at the largest size: adding, replacing and deleting one article.
Once per run: the indexing overhead (index time / raw ``encode`` of the same texts, on a sample).
Results go to ``OUT/scale.json`` and ``OUT/scale.md`` with plots (``OUT/scale.png``).
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import index  # noqa: F401  (offline switches)
from eval import facqa
from eval.metrics import percentile
from index.documents import Document, read_jsonl
from index.embedder import embed_passages
from index.onnx_embedder import int8_instruction_sets
from index.sentences import group_chunks, split_sentences
from rag.tanya import Tanya

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
QUESTIONS_PER_LANGUAGE = 100
HTTP_QUESTIONS = 40
OVERHEAD_SAMPLE_DOCS = 300


def chunk_count(doc: Document) -> int:
    return len(group_chunks(split_sentences(doc.text)))


def articles_for(path: Path, sizes: list[int]) -> dict[int, list[Document]]:
    """The first articles of the file up to each size in chunks (smaller sizes are prefixes)."""
    out: dict[int, list[Document]] = {}
    docs: list[Document] = []
    chunks = 0
    remaining = sorted(sizes)
    for doc in read_jsonl(path):
        docs.append(doc)
        chunks += chunk_count(doc)
        while remaining and chunks >= remaining[0]:
            out[remaining.pop(0)] = list(docs)
        if not remaining:
            break
    for size in remaining:  # the file holds fewer chunks than asked for: say so, use it all
        print(f"note: {path} holds {chunks:,} chunks, fewer than {size:,}; using all of it", file=sys.stderr)
        out[size] = list(docs)
    return out


def questions() -> list[str]:
    _, items = facqa.load()
    english = facqa.english_items(items)["valid"]
    return ([it.question for it in items["valid"][:QUESTIONS_PER_LANGUAGE]]
            + [it.question for it in english[:QUESTIONS_PER_LANGUAGE]])


def timed(fn, *args) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn(*args)
    return (time.perf_counter() - start) * 1000


def latency(tanya: Tanya, asked: list[str]) -> dict[str, float]:
    tanya.warm_up()
    tanya.ask(asked[0])
    ask_ms = [timed(tanya.ask, q) for q in asked]
    retrieve_ms = [timed(tanya.retrieve, q) for q in asked]
    return {"ask_p50_ms": percentile(ask_ms, 50), "ask_p95_ms": percentile(ask_ms, 95),
            "retrieve_p50_ms": percentile(retrieve_ms, 50), "retrieve_p95_ms": percentile(retrieve_ms, 95)}


def bench_filters(tanya: Tanya) -> dict[str, dict]:
    """Filters of the kinds people use, chosen from the index itself: one publisher of middling size, the
    middle half of the publication dates, and one day (the median date): broad to narrow. An undated
    corpus gets only the first, one without publishers none of it."""
    dates = sorted(d.date for d in tanya.documents() if d.date)
    sources = tanya.sources()
    out: dict[str, dict] = {}
    if sources:
        out["source"] = {"source": sources[len(sources) // 2][0]}
    if dates:
        out["dates"] = {"since": dates[len(dates) // 4], "until": dates[3 * len(dates) // 4]}
        out["day"] = {"since": dates[len(dates) // 2], "until": dates[len(dates) // 2]}
    return out


def filtered_latency(tanya: Tanya, asked: list[str]) -> dict[str, float | str]:
    """``ask`` under each of ``bench_filters``: latency, and its ratio to the unfiltered p50 (issue 15:
    a filtered question should cost at most 1.5 times an unfiltered one)."""
    figures: dict[str, float | str] = {}
    plain = [timed(tanya.ask, q) for q in asked]
    for name, filters in bench_filters(tanya).items():
        matching = tanya.matching_documents(**filters) or {"documents": 0}
        took = [timed(functools.partial(tanya.ask, **filters), q) for q in asked]
        figures |= {f"{name}_filter": json.dumps(filters), f"{name}_filter_documents": matching["documents"],
                    f"{name}_filtered_ask_p50_ms": percentile(took, 50),
                    f"{name}_filtered_ask_p95_ms": percentile(took, 95),
                    f"{name}_filtered_over_plain_p50": percentile(took, 50) / percentile(plain, 50)}
    return figures


def overhead(docs: list[Document]) -> dict[str, float]:
    """Index a sample into a scratch home, then encode exactly its texts with the same model."""
    sample = docs[:OVERHEAD_SAMPLE_DOCS]
    with tempfile.TemporaryDirectory(prefix="tanya-overhead-") as scratch:
        tanya = Tanya.open(scratch)
        embedder = tanya.index.embedder
        embed_passages(embedder, ["pemanasan model"])  # load and warm up outside the timings
        start = time.perf_counter()
        report = tanya.add(sample)
        index_seconds = time.perf_counter() - start
        texts = []
        for doc in sample:
            spans = split_sentences(doc.text)
            texts += [doc.text[c.start : c.end] for c in group_chunks(spans)] + [s.text for s in spans]
        start = time.perf_counter()
        embed_passages(embedder, texts)
        encode_seconds = time.perf_counter() - start
        tanya.close()
    return {"documents": len(sample), "chunks": report.chunks, "sentences": report.sentences,
            "index_seconds": index_seconds, "encode_seconds": encode_seconds,
            "overhead": index_seconds / encode_seconds - 1}


def build(home: Path, docs: list[Document]) -> dict[str, float]:
    tanya = Tanya.open(home)
    start = time.perf_counter()
    report = tanya.add(docs, progress=True)
    seconds = time.perf_counter() - start
    documents, sentences, chunks = tanya.counts()
    tanya.close()
    built = len(report.added) + len(report.updated)
    return {"documents": documents, "sentences": sentences, "chunks": chunks, "built_now": built,
            "build_seconds": seconds,
            "documents_per_second": built / seconds if built else float("nan"),
            "texts_per_second": (report.chunks + report.sentences) / seconds if built else float("nan")}


def new_article() -> Document:
    """An article-sized document of real news that is not in the scale corpus: ten FacQA passages
    (~1,800 characters, about the median CLICK-ID article)."""
    passages = facqa.load()[0][:10]
    return Document("bench-new-article", "\n\n".join(p.text for p in passages), "Artikel baru")


def incremental(tanya: Tanya, new_doc: Document) -> dict[str, float]:
    changed = Document(new_doc.doc_id, new_doc.text + " Pembaruan: paragraf ini ditambahkan kemudian.",
                       new_doc.title, new_doc.date, new_doc.source)
    tanya.delete(new_doc.doc_id)  # a previous, interrupted run may have left it
    return {"add_ms": timed(tanya.add, [new_doc]), "replace_ms": timed(tanya.add, [changed]),
            "delete_ms": timed(tanya.delete, new_doc.doc_id), "article_chars": len(new_doc.text)}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(url: str, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(url)


def rss_mb(pid: int) -> tuple[float, float]:
    """(current RSS, peak RSS) of a process in MB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def serve(home: Path, asked: list[str]) -> dict[str, float]:
    port = free_port()
    env = {**os.environ, "TANYA_HOME": str(home)}
    start = time.perf_counter()
    proc = subprocess.Popen([str(BIN / "tanya"), "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/", 300, proc)
        ready = time.perf_counter() - start
        rss_ready, _ = rss_mb(proc.pid)
        for q in asked[:HTTP_QUESTIONS]:
            body = json.dumps({"question": q}).encode()
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/ask", body,
                                             {"Content-Type": "application/json"})
            with urllib.request.urlopen(request, timeout=60) as response:
                response.read()
        rss, peak = rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return {"serve_ready_s": ready, "serve_rss_ready_mb": rss_ready, "serve_rss_mb": rss, "serve_peak_rss_mb": peak}


def with_chroma_server(home: Path, asked: list[str]) -> dict[str, float]:
    """The same index with its vectors served by ``chroma run`` over the home's Chroma folder."""
    port = free_port()
    proc = subprocess.Popen([str(BIN / "chroma"), "run", "--path", str(home / "chroma"), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(f"http://127.0.0.1:{port}/api/v2/heartbeat", 120, proc)
        tanya = Tanya.open(home, chroma_url=f"http://127.0.0.1:{port}")
        figures = {f"server_{k}": v for k, v in latency(tanya, asked).items()}
        tanya.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("articles", type=Path)
    parser.add_argument("--sizes", default="1000,10000,100000", help="corpus sizes in chunks")
    parser.add_argument("--work", type=Path, default=REPO / ".cache" / "bench")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--skip-overhead", action="store_true")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    selections = articles_for(args.articles, sizes)
    asked = questions()
    args.out.mkdir(parents=True, exist_ok=True)
    results_file = args.out / "scale.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    results["machine"] = {"cpus": os.cpu_count(), "embedder": os.environ.get("TANYA_EMBEDDER", "default"),
                          **int8_instruction_sets()}
    if not args.skip_overhead:
        results["overhead"] = overhead(selections[sizes[0]])
        print(json.dumps(results["overhead"]), file=sys.stderr)
    for size in sizes:
        home = args.work / f"home-{size}"
        if home.exists() and not (home / "documents.sqlite3").exists():
            shutil.rmtree(home)
        row: dict[str, float | str] = dict(build(home, selections[size]))
        tanya = Tanya.open(home)
        row |= latency(tanya, asked)
        row |= filtered_latency(tanya, asked)
        if size == sizes[-1]:
            row |= incremental(tanya, new_article())
        tanya.close()
        del tanya
        gc.collect()
        row |= with_chroma_server(home, asked)
        row |= serve(home, asked)
        results.setdefault("sizes", {})[str(size)] = row
        results_file.write_text(json.dumps(results, indent=2))
        print(json.dumps({"size": size, **row}), file=sys.stderr)
    write_report(results, args.out)


def write_report(results: dict, out: Path) -> None:  # type: ignore[type-arg]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = sorted(results["sizes"].items(), key=lambda kv: kv[1]["chunks"])
    chunks = [r["chunks"] for _, r in rows]
    fig, (lat, mem) = plt.subplots(1, 2, figsize=(11, 4))
    for key, label, style in (("ask_p50_ms", "ask p50", "o-"), ("ask_p95_ms", "ask p95", "o--"),
                              ("retrieve_p50_ms", "retrieve p50", "s-"),
                              ("server_ask_p50_ms", "ask p50, Chroma server", "^-"),
                              ("server_ask_p95_ms", "ask p95, Chroma server", "^--")):
        lat.plot(chunks, [r.get(key, float("nan")) for _, r in rows], style, label=label)
    lat.axhline(50, color="grey", lw=0.8, ls=":")
    lat.axhline(150, color="grey", lw=0.8, ls=":")
    lat.text(chunks[0], 52, "p50 target", fontsize=7, color="grey")
    lat.text(chunks[0], 152, "p95 target", fontsize=7, color="grey")
    lat.set_ylim(0, max(170, *(r.get("server_ask_p95_ms", 0) * 1.1 for _, r in rows)))
    lat.set(xscale="log", xlabel="chunks in the index", ylabel="ms per question", title="Question latency")
    lat.legend(fontsize=8)
    mem.plot(chunks, [r["serve_rss_mb"] for _, r in rows], "o-", label="RSS after questions")
    mem.plot(chunks, [r["serve_peak_rss_mb"] for _, r in rows], "o--", label="peak RSS")
    mem.axhline(1536, color="grey", lw=0.8, ls=":")
    mem.text(chunks[0], 1400, "targets: RSS 1.5 GB (grey), ready 10 s (red)", fontsize=7, color="grey")
    mem.set_ylim(0, max(1800, *(r["serve_peak_rss_mb"] * 1.1 for _, r in rows)))
    ready = mem.twinx()
    ready.plot(chunks, [r["serve_ready_s"] for _, r in rows], "s-", color="tab:red", label="ready (s)")
    ready.axhline(10, color="tab:red", lw=0.8, ls=":")
    ready.set_ylim(0, max(12, *(r["serve_ready_s"] * 1.2 for _, r in rows)))
    ready.set_ylabel("seconds from start to the chat page (target 10)", color="tab:red")
    mem.set(xscale="log", xlabel="chunks in the index", ylabel="MB", title="tanya serve")
    handles = mem.get_legend_handles_labels()[0] + ready.get_legend_handles_labels()[0]
    mem.legend(handles=handles, fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(out / "scale.png", dpi=110)
    columns = ["documents", "chunks", "sentences", "documents_per_second", "ask_p50_ms", "ask_p95_ms",
               "retrieve_p50_ms", "retrieve_p95_ms", "server_ask_p50_ms", "server_ask_p95_ms",
               "source_filtered_over_plain_p50", "dates_filtered_over_plain_p50", "day_filtered_over_plain_p50",
               "serve_ready_s", "serve_rss_mb", "serve_peak_rss_mb"]
    lines = ["| " + " | ".join(c.replace("_", " ") for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_fmt(r.get(c)) for c in columns) + " |" for _, r in rows]
    largest = rows[-1][1]
    lines += ["", f"One article ({_fmt(largest.get('article_chars'))} characters) at the largest size: " + ", ".join(
        f"{k.removesuffix('_ms')} {_fmt(largest.get(k))} ms" for k in ("add_ms", "replace_ms", "delete_ms"))]
    lines += [f"Filters at the largest size ({name}): {largest[f'{name}_filter']}, "
              f"{_fmt(largest[f'{name}_filter_documents'])} documents"
              for name in ("source", "dates", "day") if f"{name}_filter" in largest]
    if "overhead" in results:
        o = results["overhead"]
        lines += [f"Indexing overhead over raw encode ({o['documents']} articles, {o['chunks']} chunks, "
                  f"{o['sentences']} sentences): {o['overhead']:.1%} (index {o['index_seconds']:.1f} s, "
                  f"encode {o['encode_seconds']:.1f} s)"]
    (out / "scale.md").write_text("\n".join(lines) + "\n\n![scale](scale.png)\n", encoding="utf-8")


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if value < 1000 else f"{value:,.0f}"
    return "" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


if __name__ == "__main__":
    main()
