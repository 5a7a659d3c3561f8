"""Embedding backends side by side: throughput, one-query latency, load time and memory.

    python benchmarks/embedders.py [--passages 400] [--threads 2]

Each backend runs in a fresh process (so load time and RSS are its own) on the same texts: FacQA
passages (~75 tokens, like chunks) and single sentences split from them (~30 tokens). Quality is
measured separately by ``tanya eval --sets facqa`` with ``TANYA_EMBEDDER`` set (benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def measure(backend: str, count: int) -> dict[str, float]:
    start = time.perf_counter()
    import index  # noqa: F401  (offline switches)
    from eval import facqa
    from eval.metrics import percentile
    from index.embedder import embed_passages, embed_query, load_embedder
    from index.home import DataHome
    from index.sentences import split_sentences

    embedder = load_embedder(DataHome.resolve().model_dir, backend)
    embed_query(embedder, "pemanasan")
    loaded = time.perf_counter() - start
    passages = [d.text for d in facqa.load()[0][:count]]
    sentences = [s.text for p in passages for s in split_sentences(p)][: 2 * count]
    t = time.perf_counter()
    embed_passages(embedder, passages)
    passage_rate = len(passages) / (time.perf_counter() - t)
    t = time.perf_counter()
    embed_passages(embedder, sentences)
    sentence_rate = len(sentences) / (time.perf_counter() - t)
    query_ms = []
    for question in sentences[:100]:
        t = time.perf_counter()
        embed_query(embedder, question)
        query_ms.append((time.perf_counter() - t) * 1000)
    status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return {"backend": backend, "passages_per_s": passage_rate, "sentences_per_s": sentence_rate,
            "query_p50_ms": percentile(query_ms, 50), "load_s": loaded,
            "rss_mb": int(status["VmRSS"].split()[0]) / 1024, "torch_imported": "torch" in sys.modules}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--passages", type=int, default=400)
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: measure one backend in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.passages)))
        return
    from index.embedder import BACKENDS

    for backend in BACKENDS:
        out = subprocess.run([sys.executable, __file__, "--one", backend, "--passages", str(args.passages)],
                             capture_output=True, text=True, check=True, cwd=REPO, env=os.environ)
        print(out.stdout.strip().splitlines()[-1], flush=True)


if __name__ == "__main__":
    main()
