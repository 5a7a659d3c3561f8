"""A fixed sample of generic Indonesian news, embedded once per model (kept beside its int8 graph).

e5 cosines bunch in 0.7-0.9 and their level depends on the question itself (an English question sits
~0.05 lower against Indonesian text than the same question in Indonesian). A question's mean cosine to
this background puts its scores on a common scale, so "how far above background is the best
sentence" means the same for every question, language and corpus size.
"""

from __future__ import annotations

import hashlib
import os
import threading
import zipfile
from pathlib import Path

import numpy as np
from llama_index.core.embeddings import BaseEmbedding

from index.embedder import embed_passages

BACKGROUND_FILE = Path(__file__).parent / "data" / "background_id.txt"
KEPT_FORMAT = 1  # bump when what the kept vectors are changes (prompt, pooling, truncation in encode())

_lock = threading.Lock()
_vectors: dict[int, np.ndarray] = {}


def background_vectors(embedder: BaseEmbedding) -> np.ndarray:
    with _lock:
        key = id(embedder)
        if key not in _vectors:
            lines = BACKGROUND_FILE.read_text(encoding="utf-8").splitlines()
            texts = [ln for ln in lines if ln and not ln.startswith("#")]
            _vectors[key] = _kept(embedder, texts)
        return _vectors[key]


def _kept(embedder: BaseEmbedding, texts: list[str]) -> np.ndarray:
    """The sample's vectors, embedded once per int8 graph and kept beside it: every process that answers
    (each `tanya ask`, each serve start) otherwise spends ~1.5 s on two cores embedding it again. Kept under
    a key of the texts and the graph's export record, so another sample or graph is embedded anew."""
    from index.onnx_embedder import ONNX_INT8_RECORD, OnnxE5Embedding

    if not isinstance(embedder, OnnxE5Embedding):  # torch: a development backend, embedded each time
        return embed_passages(embedder, texts)
    graph = Path(embedder.model_name)
    record = graph.parent.parent / ONNX_INT8_RECORD
    graph_stat = graph.stat()
    made = f"{KEPT_FORMAT} {graph_stat.st_size} {graph_stat.st_mtime_ns}".encode()  # another graph: anew
    digest = hashlib.sha256("\n".join(texts).encode() + made + (record.read_bytes() if record.is_file() else b"")
                            ).hexdigest()
    kept = graph.with_name("background.npz")
    try:
        with np.load(kept) as stored:
            if str(stored["key"]) == digest:
                return stored["vectors"]
    except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile):
        pass  # none yet, another sample or graph, or a damaged file: embed again
    vectors = embed_passages(embedder, texts)
    partial = kept.with_name(f".{kept.name}.{os.getpid()}.npz")
    try:
        np.savez(partial, key=np.array(digest), vectors=vectors)
        os.replace(partial, kept)
    except OSError:  # a read-only or full model folder: embedded again by the next process
        partial.unlink(missing_ok=True)
    return vectors


def background_level(embedder: BaseEmbedding, query_vec: np.ndarray) -> float:
    return float(np.mean(background_vectors(embedder) @ query_vec))
