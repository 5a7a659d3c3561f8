"""The embedding model, loaded once per process as a llama-index embedding.

Two backends of the same model (multilingual-e5-small): ``torch`` (sentence-transformers through
llama-index's HuggingFaceEmbedding, fp32) and ``onnx-int8`` (index/onnx_embedder.py, ~2.5x faster,
no torch in the process). An index records the backend that built it and keeps using it, so vectors
of two backends never mix in one index; ``TANYA_EMBEDDER`` picks the backend of a new index.

e5 needs ``query: `` before questions and ``passage: `` before indexed text; both backends apply them,
so no caller adds them by hand.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np
from llama_index.core import Settings
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.llms import MockLLM

from index.errors import InputError
from index.model import is_provisioned, provision

QUERY_PROMPT = "query: "
PASSAGE_PROMPT = "passage: "
BACKENDS = ("torch", "onnx-int8")
DEFAULT_BACKEND = "onnx-int8"  # ~2.5x faster, FacQA within 1 point of torch (benchmarks/README.md)

_lock = threading.Lock()
_loaded: dict[tuple[Path, str], BaseEmbedding] = {}


def configured_backend() -> str:
    backend = os.environ.get("TANYA_EMBEDDER") or DEFAULT_BACKEND
    if backend not in BACKENDS:
        raise InputError(f"TANYA_EMBEDDER={backend!r} is not one of {', '.join(BACKENDS)}")
    return backend


def load_embedder(model_dir: Path, backend: str = DEFAULT_BACKEND) -> BaseEmbedding:
    """Provision the model on first use, then load it once per process, folder and backend."""
    with _lock:
        key = (model_dir, backend)
        if key not in _loaded:
            if not is_provisioned(model_dir):
                provision(model_dir)
            _loaded[key] = _torch(model_dir) if backend == "torch" else _onnx_int8(model_dir)
            # Without these llama-index reaches for OpenAI packages on first use.
            Settings.embed_model = _loaded[key]
            Settings.llm = MockLLM()
        return _loaded[key]


def _torch(model_dir: Path) -> BaseEmbedding:
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # "Loading weights" bars on every start
    return HuggingFaceEmbedding(model_name=str(model_dir), device="cpu", query_instruction=QUERY_PROMPT,
                                text_instruction=PASSAGE_PROMPT, embed_batch_size=32, normalize=True)


def _onnx_int8(model_dir: Path) -> BaseEmbedding:
    from index.onnx_embedder import OnnxE5Embedding, export_int8

    export_int8(model_dir)  # once per model folder
    return OnnxE5Embedding(model_dir, QUERY_PROMPT, PASSAGE_PROMPT)


def embed_passages(embedder: BaseEmbedding, texts: list[str]) -> np.ndarray:
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return np.asarray(embedder.get_text_embedding_batch(texts), dtype=np.float32)


def embed_query(embedder: BaseEmbedding, text: str) -> np.ndarray:
    return np.asarray(embedder.get_query_embedding(text), dtype=np.float32)
