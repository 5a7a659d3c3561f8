"""The embedding model, loaded once per process through llama-index's HuggingFaceEmbedding.

e5 needs ``query: `` before questions and ``passage: `` before indexed text; HuggingFaceEmbedding
applies them as sentence-transformers prompts, so no caller adds them by hand.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
from llama_index.core import Settings
from llama_index.core.embeddings import BaseEmbedding
from llama_index.core.llms import MockLLM

from index.model import is_provisioned, provision

QUERY_PROMPT = "query: "
PASSAGE_PROMPT = "passage: "

_lock = threading.Lock()
_loaded: dict[Path, BaseEmbedding] = {}


def load_embedder(model_dir: Path, batch_size: int = 32) -> BaseEmbedding:
    """Provision the model on first use, then load it once per process and folder."""
    with _lock:
        if model_dir not in _loaded:
            if not is_provisioned(model_dir):
                provision(model_dir)
            from llama_index.embeddings.huggingface import HuggingFaceEmbedding
            from transformers.utils import logging as transformers_logging

            transformers_logging.disable_progress_bar()  # "Loading weights" bars on every start

            _loaded[model_dir] = HuggingFaceEmbedding(
                model_name=str(model_dir), device="cpu", query_instruction=QUERY_PROMPT,
                text_instruction=PASSAGE_PROMPT, embed_batch_size=batch_size, normalize=True)
            # Without these llama-index reaches for OpenAI packages on first use.
            Settings.embed_model = _loaded[model_dir]
            Settings.llm = MockLLM()
        return _loaded[model_dir]


def embed_passages(embedder: BaseEmbedding, texts: list[str]) -> np.ndarray:
    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    return np.asarray(embedder.get_text_embedding_batch(texts), dtype=np.float32)


def embed_query(embedder: BaseEmbedding, text: str) -> np.ndarray:
    return np.asarray(embedder.get_query_embedding(text), dtype=np.float32)
