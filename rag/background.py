"""A fixed sample of generic Indonesian news, embedded once per process.

e5 cosines bunch in 0.7-0.9 and their level depends on the question itself (an English question sits
~0.05 lower against Indonesian text than the same question in Indonesian). A question's mean cosine to
this background puts its scores on a common scale, so "how far above background is the best
sentence" means the same for every question, language and corpus size.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from llama_index.core.embeddings import BaseEmbedding

from index.embedder import embed_passages

BACKGROUND_FILE = Path(__file__).parent / "data" / "background_id.txt"

_lock = threading.Lock()
_vectors: dict[int, np.ndarray] = {}


def background_vectors(embedder: BaseEmbedding) -> np.ndarray:
    with _lock:
        key = id(embedder)
        if key not in _vectors:
            lines = BACKGROUND_FILE.read_text(encoding="utf-8").splitlines()
            _vectors[key] = embed_passages(embedder, [ln for ln in lines if ln and not ln.startswith("#")])
        return _vectors[key]


def background_level(embedder: BaseEmbedding, query_vec: np.ndarray) -> float:
    return float(np.mean(background_vectors(embedder) @ query_vec))
