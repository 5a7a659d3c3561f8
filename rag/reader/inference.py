"""The reader at question time: its ONNX graph (rag/reader/model.py), onnxruntime, no torch.

For each candidate passage it gives an "answerable" logit (does this passage answer the question?),
the no-answer span score, and the best answer span as exact character offsets into the passage.
The answer pipeline (rag/pipeline.py) uses the first to rerank candidates and, with the retrieval
evidence, to refuse; the span becomes the short answer and picks the sentence cited first.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from index.onnx_embedder import model_runs
from rag.reader.inputs import Window, as_tokenized, batch_arrays, passage_windows, question_ids
from rag.reader.model import composed_graph

MAX_ANSWER_TOKENS = 30
TOP_POSITIONS = 20  # start and end candidates considered per window
BATCH = 8

_lock = threading.Lock()
_loaded: dict[Path, Reader] = {}


@dataclass(frozen=True)
class Reading:
    answerable: float  # logit of "this passage answers the question"
    span_score: float  # start + end logit of the best span
    null_score: float  # start + end logit of "no answer" (position 0)
    start: int  # the best span, characters of the passage
    end: int

    @property
    def span_margin(self) -> float:
        return self.span_score - self.null_score


class Reader:
    def __init__(self, model_dir: Path, threads: int | None = None, folder: Path | None = None) -> None:
        import onnxruntime as ort

        from index.onnx_embedder import session_options, shared_tokenizer

        # No memory arena: each question's batch has another shape, and an arena keeps the largest blocks
        # it ever needed. 120 FacQA questions at 76k chunks: 1,159 MB with it, 1,124 MB without, at the same
        # speed; 1,029 MB once the embedder also shrank its arena on questions (now: after each call, see
        # index/onnx_embedder.py; tanya serve at 76k chunks then holds 1,108 MB).
        self._session: Any = ort.InferenceSession(str(composed_graph(model_dir, folder)),
                                                  sess_options=session_options(threads, arena=False),
                                                  providers=["CPUExecutionProvider"])
        self._tokenizer: Any = shared_tokenizer(model_dir)  # the embedder's copy (~280 MB each)

    def read(self, question: str, passages: list[str]) -> list[Reading | None]:
        """One reading per passage (None for a passage with nothing to read): its best window's."""
        q_ids = question_ids(self._tokenizer, question)
        windows: list[tuple[int, Window]] = []
        for i, passage in enumerate(passages):
            windows.extend((i, w) for w in passage_windows(self._tokenizer, q_ids, passage) if w.offsets)
        best: list[Reading | None] = [None] * len(passages)
        order = sorted(range(len(windows)), key=lambda j: len(windows[j][1].ids))
        for start in range(0, len(order), BATCH):
            rows = [windows[j] for j in order[start : start + BATCH]]
            ids, mask = batch_arrays([w for _, w in rows])
            with model_runs:
                starts, ends, answerable = self._session.run(None, {"input_ids": ids, "attention_mask": mask})
            for row, (i, window) in enumerate(rows):
                reading = decode(window, starts[row], ends[row], float(answerable[row]), passages[i])
                current = best[i]
                if current is None or reading.answerable > current.answerable:
                    best[i] = reading
        return best


def decode(window: Window, starts: np.ndarray, ends: np.ndarray, answerable: float, passage: str) -> Reading:
    """The best span of passage tokens (start <= end, at most MAX_ANSWER_TOKENS), as characters with
    surrounding whitespace trimmed (a token's offsets include the space before it)."""
    first, count = window.passage_first, len(window.offsets)
    s_logits, e_logits = starts[first : first + count], ends[first : first + count]
    best = (-np.inf, 0, 0)
    for i in np.argsort(-s_logits)[:TOP_POSITIONS]:
        for j in np.argsort(-e_logits)[:TOP_POSITIONS]:
            if i <= j < i + MAX_ANSWER_TOKENS and s_logits[i] + e_logits[j] > best[0]:
                best = (float(s_logits[i] + e_logits[j]), int(i), int(j))
    if best[0] == -np.inf:  # every top end lies before every top start: the best single token
        k = int(np.argmax(s_logits + e_logits))
        best = (float(s_logits[k] + e_logits[k]), k, k)
    score, i, j = best
    char_start, char_end = window.offsets[i][0], window.offsets[j][1]
    text = as_tokenized(passage)  # control characters count as the spaces the tokenizer saw
    while char_start < char_end and text[char_start].isspace():
        char_start += 1
    while char_end > char_start and text[char_end - 1].isspace():
        char_end -= 1
    return Reading(answerable, score, float(starts[0] + ends[0]), char_start, char_end)


def load_reader(model_dir: Path) -> Reader:
    """Once per process and model folder (raises ReaderUnavailable with what to do)."""
    with _lock:
        if model_dir not in _loaded:
            _loaded[model_dir] = Reader(model_dir)
        return _loaded[model_dir]
