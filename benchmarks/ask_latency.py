"""`ask` latency over FacQA valid questions (Indonesian and their English translations).

    python benchmarks/ask_latency.py [--home DIR]   # DIR: a data home holding the FacQA index
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import index  # noqa: F401  (offline switches)
from eval import facqa
from eval.metrics import percentile
from rag.tanya import Tanya


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path)
    args = parser.parse_args()
    docs, items = facqa.load()
    tanya = Tanya.open(args.home or tempfile.mkdtemp(prefix="tanya-latency-"))
    tanya.add(docs, progress=True)
    questions = [it.question for it in items["valid"]] + [it.question for it in facqa.english_items(items)["valid"]]
    tanya.ask(questions[0])  # warm-up (first call embeds the background sample)
    timings = []
    for q in questions:
        start = time.perf_counter()
        tanya.ask(q)
        timings.append((time.perf_counter() - start) * 1000)
    print(json.dumps({"corpus_chunks": tanya.index.store.counts()[2], "questions": len(questions),
                      "ask_p50_ms": round(percentile(timings, 50), 1),
                      "ask_p95_ms": round(percentile(timings, 95), 1)}, indent=2))


if __name__ == "__main__":
    main()
