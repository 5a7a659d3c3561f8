"""BM25 over chunks (bm25s), kept beside Chroma because Chroma's own BM25 is cloud-only.

The index is derived from the document store and rebuilt from it after each indexing run; it is
written to a fresh folder and swapped in, so a crash never leaves a half-written BM25 behind.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import bm25s
import numpy as np

from index.lexical import ANALYZER, tokenize

ChunkKey = tuple[str, int]  # (doc_id, chunk index)


class BM25Index:
    def __init__(self, model: bm25s.BM25 | None, keys: list[ChunkKey], analyzer: str = ANALYZER) -> None:
        self._model = model
        self.analyzer = analyzer  # the token analysis this index was built with
        self.keys = keys
        self._row_of = {key: row for row, key in enumerate(keys)}
        self._vocab: dict[str, int] = model.vocab_dict if model is not None else {}

    @classmethod
    def build(cls, chunks: list[tuple[str, int, str]]) -> BM25Index:
        keys = [(doc_id, idx) for doc_id, idx, _ in chunks]
        if not chunks:
            return cls(None, [])
        model = bm25s.BM25()
        # An empty token list would make bm25s drop the row; a placeholder keeps rows aligned with keys.
        model.index([tokenize(text) or ["\x00"] for _, _, text in chunks], show_progress=False)
        return cls(model, keys)

    def save(self, folder: Path) -> None:
        staging = folder.with_name(folder.name + ".new")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        if self._model is not None:
            self._model.save(str(staging))
        (staging / "keys.json").write_text(json.dumps(self.keys), encoding="utf-8")
        (staging / "analyzer.txt").write_text(self.analyzer, encoding="utf-8")
        old = folder.with_name(folder.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        if folder.exists():
            os.replace(folder, old)
        os.replace(staging, folder)
        shutil.rmtree(old, ignore_errors=True)

    @classmethod
    def load(cls, folder: Path) -> BM25Index:
        keys_file = folder / "keys.json"
        if not keys_file.exists():
            return cls(None, [])
        keys = [tuple(k) for k in json.loads(keys_file.read_text(encoding="utf-8"))]
        model = bm25s.BM25.load(str(folder)) if keys else None
        analyzer_file = folder / "analyzer.txt"
        analyzer = analyzer_file.read_text(encoding="utf-8") if analyzer_file.exists() else "unknown"
        return cls(model, keys, analyzer)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.keys)

    def scores(self, query_terms: list[str]) -> np.ndarray:
        """BM25 score of every chunk (row order = ``keys``) for analysed query terms
        (``index.lexical.content_terms``); zeros when no term is in the index."""
        terms = [t for t in query_terms if t in self._vocab]
        if self._model is None or not terms:
            return np.zeros(len(self.keys), dtype=np.float32)
        return self._model.get_scores(terms)

    def idf(self, term: str) -> float:
        """BM25 inverse document frequency; a term the corpus never uses gets the highest value
        (its absence is the strongest sign that a passage does not answer the question)."""
        doc_freq = 0
        if self._model is not None and term in self._vocab:
            indptr = self._model.scores["indptr"]
            doc_freq = int(indptr[self._vocab[term] + 1] - indptr[self._vocab[term]])
        n_docs = len(self.keys)
        return float(np.log(1 + (n_docs - doc_freq + 0.5) / (doc_freq + 0.5)))

    def row(self, key: ChunkKey) -> int | None:
        return self._row_of.get(key)
