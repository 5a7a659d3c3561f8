"""How the reader sees a (question, passage) pair: one definition for training and for inference.

The reader is a cross-encoder on multilingual-e5-small: ``<s> query: QUESTION </s> </s> PASSAGE </s>``,
the passage cut into token windows that fit ``MAX_TOKENS`` (with an overlap, so an answer near a cut
is whole in one window). Each window keeps the character offsets of its passage tokens, so a predicted
token span maps back to exact characters of the passage (and from there of the document).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_TOKENS = 256  # question + passage window + 4 special tokens (training and inference alike): a whole chunk
MAX_QUESTION_TOKENS = 48
WINDOW_OVERLAP = 64  # tokens two consecutive windows of one long passage share
QUESTION_PROMPT = "query: "  # e5's own prompt for questions
BOS, EOS, PAD = 0, 2, 1  # XLM-R's special ids (the provisioned tokenizer.json)
# The tokenizer deletes control characters, and its offsets then shift left by those deleted before a
# token ("\x12Budi hadir": "hadir" mapped to "i hadi"). Read as spaces they keep every offset exact.
_CONTROLS_AS_SPACES = str.maketrans({c: " " for c in map(chr, range(0xA0))
                                     if unicodedata.category(c) == "Cc" and not c.isspace()})


@dataclass
class Window:
    """One model input: token ids, and for each passage token its character span in the passage."""

    ids: list[int]
    passage_first: int  # index of the first passage token in ``ids``
    offsets: list[tuple[int, int]]  # per passage token, characters in the passage
    start_char: int  # the window's first and last passage characters
    end_char: int


def as_tokenized(passage: str) -> str:
    """The passage as the tokenizer gets it: of the same length, so its offsets are the passage's."""
    return passage.translate(_CONTROLS_AS_SPACES)


def with_combining_marks(passage: str, offsets: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Token offsets that take in the combining marks after them ("Jose\u0301"): the tokenizer composes
    a letter and its marks into one character whose offsets stop before the marks, which a span ending
    there would drop. A mark the next token covers stays that token's."""
    out = []
    for k, (start, end) in enumerate(offsets):
        limit = offsets[k + 1][0] if k + 1 < len(offsets) else len(passage)
        while end < limit and unicodedata.combining(passage[end]):
            end += 1
        out.append((start, end))
    return out


def question_ids(tokenizer: Any, question: str) -> list[int]:
    ids = tokenizer.encode(QUESTION_PROMPT + question, add_special_tokens=False).ids
    return list(ids[:MAX_QUESTION_TOKENS])


def passage_windows(tokenizer: Any, q_ids: list[int], passage: str, max_tokens: int = MAX_TOKENS,
                    overlap: int = WINDOW_OVERLAP) -> list[Window]:
    """The passage in windows of at most ``max_tokens`` model tokens with the question in front (one
    window without passage tokens when the passage holds none, e.g. only control characters)."""
    encoded = tokenizer.encode(as_tokenized(passage), add_special_tokens=False)
    ids, offsets = list(encoded.ids), with_combining_marks(passage, [tuple(o) for o in encoded.offsets])
    room = max_tokens - len(q_ids) - 4
    first = len(q_ids) + 3  # <s> question </s> </s>
    windows = []
    start = 0
    while True:
        stop = min(len(ids), start + room)
        span = offsets[start:stop] or [(0, 0)]
        windows.append(Window([BOS, *q_ids, EOS, EOS, *ids[start:stop], EOS], first, list(offsets[start:stop]),
                              span[0][0], span[-1][1]))
        if stop >= len(ids):
            return windows
        start = stop - overlap


def batch_arrays(windows: list[Window]) -> tuple[np.ndarray, np.ndarray]:
    """Padded ``input_ids`` and ``attention_mask`` for a list of windows."""
    width = max(len(w.ids) for w in windows)
    ids = np.full((len(windows), width), PAD, dtype=np.int64)
    mask = np.zeros((len(windows), width), dtype=np.int64)
    for row, w in enumerate(windows):
        ids[row, : len(w.ids)] = w.ids
        mask[row, : len(w.ids)] = 1
    return ids, mask


def token_span(window: Window, char_start: int, char_end: int) -> tuple[int, int] | None:
    """Model-token positions (inclusive) covering passage characters ``[char_start, char_end)``,
    or None when the window does not hold all of them."""
    if char_start < window.start_char or char_end > window.end_char:
        return None
    first = last = None
    for i, (s, e) in enumerate(window.offsets):
        if e <= s:
            continue
        if first is None and e > char_start:
            first = i
        if s < char_end:
            last = i
    if first is None or last is None or last < first:
        return None
    return window.passage_first + first, window.passage_first + last
