"""Indexing throughput next to the raw `encode` of the same texts, in the same process.

    python benchmarks/index_speed.py ARTICLES.jsonl [--limit 300]
    python benchmarks/index_speed.py --facqa

ARTICLES.jsonl: one {"id", "text", "title"?, ...} per line (e.g. the CLICK-ID articles). The ratio
index_seconds / encode_seconds is the cost of everything that is not the model (splitting, SQLite,
Chroma, BM25).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from itertools import islice
from pathlib import Path

import index  # noqa: F401  (offline switches)
from index.documents import Document, read_jsonl
from index.embedder import embed_passages
from index.sentences import group_chunks, split_sentences
from rag.tanya import Tanya


def load_docs(args: argparse.Namespace) -> list[Document]:
    if args.facqa:
        from eval import facqa

        return facqa.load()[0][: args.limit]
    return list(islice(read_jsonl(Path(args.articles)), args.limit))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("articles", nargs="?")
    parser.add_argument("--facqa", action="store_true", help="use the FacQA passages instead")
    parser.add_argument("--limit", type=int, default=300)
    args = parser.parse_args()
    docs = load_docs(args)
    with tempfile.TemporaryDirectory() as home:
        tanya = Tanya.open(home)
        embedder = tanya.index.embedder
        embed_passages(embedder, ["pemanasan model"])  # load and warm up outside the timings

        start = time.perf_counter()
        report = tanya.add(docs)
        index_seconds = time.perf_counter() - start

        chunk_texts, sentence_texts = [], []
        for doc in docs:
            spans = split_sentences(doc.text)
            chunk_texts += [doc.text[c.start : c.end] for c in group_chunks(spans)]
            sentence_texts += [s.text for s in spans]
        start = time.perf_counter()
        embed_passages(embedder, chunk_texts)
        embed_passages(embedder, sentence_texts)
        encode_seconds = time.perf_counter() - start

    print(json.dumps({
        "documents": len(docs), "chunks": report.chunks, "sentences": report.sentences,
        "index_seconds": round(index_seconds, 2), "encode_seconds": round(encode_seconds, 2),
        "documents_per_second_indexed": round(len(docs) / index_seconds, 2),
        "texts_per_second_indexed": round((report.chunks + report.sentences) / index_seconds, 1),
        "texts_per_second_encode": round((len(chunk_texts) + len(sentence_texts)) / encode_seconds, 1),
        "overhead_over_encode": round(index_seconds / encode_seconds - 1, 3),
    }, indent=2))


if __name__ == "__main__":
    main()
