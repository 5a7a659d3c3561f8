"""Offset arithmetic as properties (hypothesis), at the unit level: sentence spans, the reader's token windows,
its span decoding, and the citations and short answer the pipeline builds from them. The promise under test:
``text[start:end] == sentence`` for every citation and span, and a short answer lies inside its cited sentence.
No index and no server: the pipeline's two retrieval stages are stubbed, the reader's model is replaced by
logits that hypothesis draws; the tokenizer is the real one."""

from __future__ import annotations

import unicodedata
from dataclasses import replace
from pathlib import Path
from typing import Any, cast
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from index.index import Index
from index.onnx_embedder import shared_tokenizer
from index.sentences import ABBREVIATIONS, MAX_SENTENCE_CHARS, Span, split_sentences
from index.store import SentenceRef
from rag.evidence import SentenceEvidence
from rag.params import Params
from rag.pipeline import Pipeline
from rag.reader.inference import MAX_ANSWER_TOKENS, Reader, Reading, decode
from rag.reader.inputs import (
    BOS,
    EOS,
    MAX_TOKENS,
    WINDOW_OVERLAP,
    Window,
    as_tokenized,
    passage_windows,
    question_ids,
    with_combining_marks,
)
from rag.retriever import Candidates

SETTINGS = settings(max_examples=200, deadline=None)

# Odd whitespace (every kind of line break str.splitlines knows, tabs, NBSP, ideographic space).
WHITESPACE = [" ", "  ", "\t", "\u00a0", "\u3000", " \t\u00a0 ", "\n", "\r", "\r\n", "\n\n\n", "\u2028", "\u2029",
              "\x0b", "\x0c", "\x1c", "\x85"]
WORDS = ["Kata", "kata", "Jakarta", "Presiden", "José", "Jose\u0301", "e\u0301", "naïve", "Москва", "القاهرة", "東京",
         "日本語", "한국어", "हिन्दी", "ภาษา", "😀", "👍🏽", "👨\u200d👩\u200d👧", "🇮🇩", "dr.", "Dr.", "No.", "Jl.",
         "A.S.", "AS.", "Prof.", "dll.", "J.", "s.d.", "Rp", "1.500,25", "3.5", "12,5%", "2016.", "\u200b", "ﬁ", "①",
         "ß", "İ"]
PUNCTUATION = ['"', "'", "“", "”", "‘", "’", "«", "»", "(", ")", "[", "]", ".", "?", "!", "…", "?!", "...", ",", ":",
               "-"]
ANY_CHAR = st.characters(exclude_categories=["Cs"])
READER_CHAR = ANY_CHAR  # control characters included (the regressions at the end of this file)
LOGIT = st.floats(-1e4, 1e4, width=32)


def news_texts(chars: st.SearchStrategy[str], max_pieces: int = 40) -> st.SearchStrategy[str]:
    """Words, abbreviations, numbers, quotes, emoji and mixed scripts, glued by odd whitespace or nothing."""
    piece = st.one_of(st.sampled_from(WORDS), st.sampled_from(PUNCTUATION), st.text(chars, max_size=3))
    glue = st.sampled_from(["", " ", " ", " ", *WHITESPACE])
    return st.lists(st.tuples(piece, glue), max_size=max_pieces).map(lambda parts: "".join(p + g for p, g in parts))


# What the reader is given: a sentence, so stripped and not empty.
PASSAGES = news_texts(READER_CHAR).map(str.strip).filter(bool)
QUESTIONS = news_texts(READER_CHAR, max_pieces=12)


@pytest.fixture(scope="module")
def tokenizer(model_dir: Path) -> Any:
    return shared_tokenizer(model_dir)


# --- 1. sentence splitting --------------------------------------------------------------------------------


def check_sentences(text: str, spans: list[Span], max_chars: int) -> None:
    previous_end = 0
    for span in spans:
        assert text[span.start : span.end] == span.text  # exact offsets into the text as read
        assert span.text and span.text == span.text.strip()  # whitespace at either end is stripped by design
        assert len(span.text.splitlines()) == 1  # every line break ends a sentence
        assert len(span.text) <= max_chars
        assert previous_end <= span.start  # in order, never overlapping
        assert not text[previous_end : span.start].strip()  # nothing visible between two sentences
        previous_end = span.end
    assert not text[previous_end:].strip()


@SETTINGS
@given(news_texts(ANY_CHAR, max_pieces=60), st.one_of(st.just(MAX_SENTENCE_CHARS), st.integers(1, 60)))
def test_sentence_spans_are_exact_in_order_and_lose_nothing_visible(text: str, max_chars: int) -> None:
    """Each span is ``text[start:end]`` as read, spans are ordered and disjoint, none holds a line break or
    exceeds ``max_chars``, and every non-whitespace character lies in some sentence."""
    check_sentences(text, split_sentences(text, max_chars=max_chars), max_chars)


@SETTINGS
@given(news_texts(ANY_CHAR, max_pieces=15), st.sampled_from(sorted(ABBREVIATIONS) + list("ABJZ")),
       st.sampled_from([str.lower, str.upper, str.title]), st.sampled_from(["Andi", "Sudirman", "5", "Budi."]),
       news_texts(ANY_CHAR, max_pieces=15))
def test_an_abbreviation_or_initial_never_ends_a_sentence(before: str, abbreviation: str, case: Any, name: str,
                                                          after: str) -> None:
    """The period of a listed abbreviation or of an initial ("dr. Andi", "Jl. Sudirman", "No. 5", "J. Budi")
    is no sentence boundary: the abbreviation and the word after it share one sentence."""
    word = f"{case(abbreviation)}."
    text = f"{before} {word} {name} {after}"
    at = len(before) + 1  # where the abbreviation starts
    spans = split_sentences(text)
    check_sentences(text, spans, MAX_SENTENCE_CHARS)
    assert any(s.start <= at and at + len(word) + 1 + len(name) <= s.end for s in spans), [s.text for s in spans]


# --- 2. the reader's windows ------------------------------------------------------------------------------


def visible(char: str) -> bool:
    """A character a token must cover: not whitespace, not one the tokenizer's normaliser deletes (controls,
    zero-width and format characters, U+FFFD, its own U+2581) or merges into the character before it
    (combining marks: see test_a_short_answer_keeps_the_combining_accent_of_its_last_letter)."""
    category = unicodedata.category(char)
    return not (char.isspace() or category in ("Cc", "Cf") or category.startswith("M") or char in "\u2581\ufffd")


def check_windows(tokenizer: Any, q_ids: list[int], passage: str, windows: list[Window], room: int,
                  overlap: int) -> None:
    encoded = tokenizer.encode(as_tokenized(passage), add_special_tokens=False)
    offsets = with_combining_marks(passage, [tuple(o) for o in encoded.offsets])
    step = room - overlap
    assert len(windows) == max(1, -(-(len(encoded.ids) - overlap) // step))  # as few as cover every token
    covered: set[int] = set()
    for k, w in enumerate(windows):
        passage_ids = w.ids[w.passage_first : -1]
        assert w.ids[: w.passage_first] == [BOS, *q_ids, EOS, EOS] and w.ids[-1] == EOS
        assert len(passage_ids) == len(w.offsets) <= room
        # The windows tile the passage's tokens, each sharing ``overlap`` tokens with the one before.
        assert passage_ids == encoded.ids[k * step : k * step + room]
        assert w.offsets == offsets[k * step : k * step + room]
        for i, (s, e) in enumerate(w.offsets):
            assert 0 <= s <= e <= len(passage)
            if i:
                assert w.offsets[i - 1][0] <= s and w.offsets[i - 1][1] <= e
            covered.update(range(s, e))
        assert (w.start_char, w.end_char) == ((w.offsets[0][0], w.offsets[-1][1]) if w.offsets else (0, 0))
    assert windows[-1].offsets[-1:] == offsets[-1:]
    assert [i for i, c in enumerate(passage) if visible(c) and i not in covered] == []


@SETTINGS
@given(PASSAGES, QUESTIONS, st.integers(1, 48), st.floats(0, 1, exclude_max=True))
def test_reader_windows_have_exact_increasing_offsets_that_cover_the_passage(
        tokenizer: Any, passage: str, question: str, room: int, overlap_share: float) -> None:
    """Each window is ``<s> question </s> </s> tokens </s>`` within its token budget; its offsets are
    non-decreasing, inside the passage, and together the windows cover every visible character of it."""
    q_ids = question_ids(tokenizer, question)
    overlap = int(overlap_share * room)
    windows = passage_windows(tokenizer, q_ids, passage, max_tokens=len(q_ids) + 4 + room, overlap=overlap)
    check_windows(tokenizer, q_ids, passage, windows, room, overlap)
    default = passage_windows(tokenizer, q_ids, passage)  # the budget the product uses
    check_windows(tokenizer, q_ids, passage, default, MAX_TOKENS - len(q_ids) - 4, WINDOW_OVERLAP)


# --- 3. the reader's span decoding ------------------------------------------------------------------------


def check_reading(reading: Reading, window: Window, passage: str) -> None:
    assert 0 <= reading.start <= reading.end <= len(passage)
    span = passage[reading.start : reading.end]
    assert span == span.strip()
    assert window.start_char <= reading.start and reading.end <= window.end_char
    # Within a run of at most MAX_ANSWER_TOKENS of the window's tokens.
    offsets = window.offsets
    assert any(offsets[i][0] <= reading.start and reading.end <= offsets[j][1]
               for i in range(len(offsets)) for j in range(i, min(len(offsets), i + MAX_ANSWER_TOKENS)))


@SETTINGS
@given(PASSAGES, QUESTIONS, st.integers(1, 64), st.data())
def test_decoded_span_is_trimmed_and_inside_its_window(tokenizer: Any, passage: str, question: str, room: int,
                                                       data: st.DataObject) -> None:
    """Whatever the logits, the span is characters of the passage with no whitespace at either end, inside
    the window's passage characters and at most MAX_ANSWER_TOKENS tokens long."""
    q_ids = question_ids(tokenizer, question)
    windows = passage_windows(tokenizer, q_ids, passage, max_tokens=len(q_ids) + 4 + room, overlap=room // 2)
    window = data.draw(st.sampled_from(windows), label="window")
    logits = hnp.arrays(np.float32, len(window.ids), elements=LOGIT)
    starts, ends = data.draw(logits, label="starts"), data.draw(logits, label="ends")
    reading = decode(window, starts, ends, 0.5, passage)
    check_reading(reading, window, passage)
    assert reading.null_score == float(starts[0] + ends[0]) and reading.answerable == 0.5


# --- 4. citations and the short answer ---------------------------------------------------------------------


class DrawnLogits:
    """Stands in for the reader's ONNX session: start, end and answerable logits drawn by hypothesis."""

    def __init__(self, data: st.DataObject) -> None:
        self.data = data

    def run(self, outputs: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        rows, width = feeds["input_ids"].shape
        spans = hnp.arrays(np.float32, (rows, width), elements=LOGIT)
        return [self.data.draw(spans), self.data.draw(spans), self.data.draw(hnp.arrays(np.float32, rows,
                                                                                        elements=LOGIT))]


class TextStore:
    """What the pipeline's compose stage reads from the document store."""

    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts

    def text(self, doc_id: str) -> str:
        return self.texts[doc_id]

    def sentence_text(self, ref: SentenceRef) -> str:
        return self.texts[ref.doc_id][ref.start : ref.end]

    def titles(self, doc_ids: set[str]) -> dict[str, tuple[str, str | None, str | None, str | None]]:
        return {doc_id: (f"Judul {doc_id}", None, None, None) for doc_id in doc_ids}


class TextIndex:
    def __init__(self, texts: dict[str, str]) -> None:
        self.store = TextStore(texts)


def drawn_reader(tokenizer: Any, data: st.DataObject) -> Reader:
    """The real Reader.read (windows, batching, decoding, best window per passage) over drawn logits."""
    reader = Reader.__new__(Reader)
    reader._tokenizer = tokenizer
    reader._session = DrawnLogits(data)
    return reader


@SETTINGS
@given(st.lists(news_texts(READER_CHAR).filter(str.strip), min_size=1, max_size=3), QUESTIONS,
       st.integers(1, 3), st.booleans(), st.data())
def test_citations_quote_their_documents_and_the_short_answer_lies_in_the_first(
        tokenizer: Any, texts: list[str], question: str, max_citations: int, with_reader: bool,
        data: st.DataObject) -> None:
    """Through the pipeline's read, decide and compose stages (retrieval stubbed, thresholds at 0 so it
    answers): every citation is ``text[start:end]`` of its document at its sentence's offsets, the answer
    quotes them in order, and the short answer is ``text[start:end]``, not empty, inside the first citation."""
    docs = {f"d{k}": text for k, text in enumerate(texts)}
    sentences = {doc_id: split_sentences(text) for doc_id, text in docs.items()}
    refs = [SentenceRef(doc_id, idx, s.start, s.end, 0) for doc_id, spans in sentences.items()
            for idx, s in enumerate(spans)]
    signal = hnp.arrays(np.float32, len(refs), elements=st.floats(0, 1, width=32))
    ev = SentenceEvidence(refs, data.draw(signal), data.draw(signal), data.draw(signal),
                          data.draw(hnp.arrays(np.float32, len(refs), elements=st.sampled_from([0.0, 1.0]))),
                          data.draw(st.booleans()), 0.5, 0.5, data.draw(st.one_of(st.none(), signal)))
    cands = Candidates(question, np.zeros(4, dtype=np.float32), "id", [], np.zeros(0), np.zeros(0), 0.0)
    shipped = Params.load()
    params = Params(replace(shipped.id, refusal_threshold=0.0, reader_refusal_threshold=0.0), shipped.en)
    reader = drawn_reader(tokenizer, data) if with_reader else None
    pipeline = Pipeline(cast(Index, TextIndex(docs)), params, reader)
    with mock.patch("rag.pipeline.collect_candidates", return_value=cands), \
            mock.patch("rag.pipeline.gather_sentences", return_value=ev):
        trace = pipeline.run(question, max_citations=max_citations)
    answer = trace.answer

    assert not answer.abstained and 1 <= len(answer.citations) <= max_citations
    for n, c in enumerate(answer.citations, start=1):
        span = sentences[c.doc_id][c.sentence_index]
        assert c.n == n and docs[c.doc_id][c.start : c.end] == c.sentence == span.text
        assert (c.start, c.end) == (span.start, span.end)
    assert answer.answer == " ".join(f"{c.sentence} [{c.n}]" for c in answer.citations)
    for row in trace.to_json(params)["read"]:  # what the trace shows of each sentence read
        assert docs[row["doc_id"]][row["start"] : row["end"]] == row["text"]
        if "reader" in row:
            assert row["start"] <= row["reader"]["span"][0] <= row["reader"]["span"][1] <= row["end"]

    short = answer.short_answer
    if trace.reader is None:
        assert short is None
        return
    for i, reading in zip(trace.reader.top, trace.reader.readings, strict=True):
        assert reading is not None and 0 <= reading.start <= reading.end <= refs[i].end - refs[i].start
    first = answer.citations[0]
    reading = dict(zip(trace.reader.top, trace.reader.readings, strict=True))[trace.cited[0][0]]
    assert reading is not None
    assert (short is None) == (reading.start == reading.end)
    if short is not None:
        assert docs[short.doc_id][short.start : short.end] == short.text
        assert short.text and short.text == short.text.strip()
        assert short.doc_id == first.doc_id and first.start <= short.start < short.end <= first.end
        assert (short.start, short.end) == (first.start + reading.start, first.start + reading.end)


# --- bugs these properties found, as minimal regressions --------------------------------------------------


def peaked(window: Window, token: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and end logits that pick the window's passage token ``token`` alone."""
    starts, ends = np.zeros(len(window.ids), np.float32), np.zeros(len(window.ids), np.float32)
    starts[window.passage_first + token] = ends[window.passage_first + token] = 10.0
    return starts, ends


def test_a_sentence_of_only_control_characters_reads_as_no_span(tokenizer: Any) -> None:
    """A document line "\\x1b" is a sentence (it is not whitespace); the reader must not crash on it."""
    reader = Reader.__new__(Reader)
    reader._tokenizer = tokenizer

    class Zeros:
        def run(self, outputs: Any, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
            rows, width = feeds["input_ids"].shape
            return [np.zeros((rows, width), np.float32), np.zeros((rows, width), np.float32), np.zeros(rows)]

    reader._session = Zeros()
    [reading] = reader.read("Siapa?", ["\x1b"])
    assert reading is None or reading.start == reading.end


def test_a_passage_that_starts_with_a_control_character_keeps_exact_offsets(tokenizer: Any) -> None:
    passage = "\x12Budi hadir"
    [window] = passage_windows(tokenizer, question_ids(tokenizer, "Siapa?"), passage)
    reading = decode(window, *peaked(window, len(window.offsets) - 1), 0.0, passage)
    assert passage[reading.start : reading.end] == "hadir"  # was "i hadi": offsets shifted by the deleted one


def test_a_short_answer_keeps_the_combining_accent_of_its_last_letter(tokenizer: Any) -> None:
    passage = "Jose\u0301"  # "José" as macOS and some sites write it (NFD)
    [window] = passage_windows(tokenizer, question_ids(tokenizer, "Siapa?"), passage)
    reading = decode(window, *peaked(window, len(window.offsets) - 1), 0.0, passage)
    assert passage[reading.start : reading.end] == passage  # was "Jose": the accent dropped
