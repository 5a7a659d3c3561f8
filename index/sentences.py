"""Indonesian-aware sentence splitting with exact character offsets.

Every span satisfies ``text[span.start:span.end] == span.text`` on the text exactly as read (no
normalisation), and spans never overlap: a citation can always be checked against its article.
We split ourselves rather than use llama-index's splitter because its offsets come from
``text.find`` (the first occurrence), which is wrong for repeated sentences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Words that end with a period but rarely end a sentence in Indonesian news (compared lowercased,
# without the period). Single letters (initials such as "John J. Thomas") are handled separately.
ABBREVIATIONS = frozenset(
    """
    jl jln gg no nomor hal hlm tel telp tlp kel kec kab kota prov kep ket pt cv tbk rp dr drs dra
    ir prof h hj kh ust st tn ny nn sdr sdri bpk bp yth jend letjen mayjen brigjen laksma marsma
    kol letkol mayor kapt lettu letda serka pol kompol akbp kombes irjen komjen gub wagub jan feb
    mar apr jun jul agu agt agst sep sept okt nov des dll dsb dst tsb sbb dkk yl ybs a.n u.p a.l
    s.d mr mrs ms vs etc approx s.h s.e s.t s.pd s.kom s.sos m.si m.sc m.m m.h ph.d
    """.split()
)

_CLOSERS = "\"'”’»)]"
# Terminal punctuation, optional closing quotes/brackets, then whitespace and the next visible char.
_BOUNDARY = re.compile(r"[.!?…]+[" + re.escape(_CLOSERS) + r"]*(?=\s+(\S))")
_LINE = re.compile(r"[^\n\r\u2028\u2029\x0b\x0c\x1c\x1d\x1e\x85]+")

MAX_SENTENCE_CHARS = 1000


@dataclass(frozen=True, slots=True)
class Span:
    start: int
    end: int
    text: str


def ends_with_abbreviation(line: str, punct_at: int) -> bool:
    """True when the word right before the period at ``punct_at`` is an abbreviation or initial."""
    word_start = punct_at
    while word_start > 0 and not line[word_start - 1].isspace():
        word_start -= 1
    word = line[word_start:punct_at].lstrip("\"'“‘«([").lower()
    if not word:
        return False
    if len(word) == 1 and word.isalpha():
        return True
    return word in ABBREVIATIONS


def _is_boundary(line: str, match: re.Match[str]) -> bool:
    next_char = match.group(1)
    if next_char.islower():  # "dll. dan ...", "kesepakatan… mereka": the sentence goes on
        return False
    return not (match.group(0)[0] == "." and len(match.group(0).rstrip(_CLOSERS)) == 1
                and ends_with_abbreviation(line, match.start()))


def _strip_span(text: str, start: int, end: int) -> tuple[int, int]:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end


def _cap_length(text: str, start: int, end: int, limit: int) -> list[tuple[int, int]]:
    """Cut over-long runs (tables, text without punctuation) at whitespace so embeddings see them."""
    pieces = []
    while end - start > limit:
        cut = text.rfind(" ", start + limit // 2, start + limit)
        cut = cut if cut > start else start + limit
        pieces.append(_strip_span(text, start, cut))
        start = cut
    pieces.append(_strip_span(text, start, end))
    return [(s, e) for s, e in pieces if e > s]


def split_sentences(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[Span]:
    """Split ``text`` into sentence spans; every line break also ends a sentence."""
    spans: list[Span] = []
    for line_match in _LINE.finditer(text):
        line, offset = line_match.group(0), line_match.start()
        cuts = [m.end() for m in _BOUNDARY.finditer(line) if _is_boundary(line, m)]
        start = 0
        for cut in [*cuts, len(line)]:
            s, e = _strip_span(line, start, cut)
            for ps, pe in _cap_length(line, s, e, max_chars) if e > s else []:
                spans.append(Span(offset + ps, offset + pe, text[offset + ps : offset + pe]))
            start = cut
    return spans


@dataclass(frozen=True, slots=True)
class Chunk:
    """Consecutive sentences ``first..last`` (inclusive) of one document, embedded together."""

    first: int
    last: int
    start: int
    end: int


def group_chunks(spans: list[Span], max_chars: int = 700, max_sentences: int = 6) -> list[Chunk]:
    """Greedy grouping of whole sentences; a chunk never splits a sentence."""
    chunks: list[Chunk] = []
    first = 0
    for i in range(1, len(spans) + 1):
        too_long = i < len(spans) and (spans[i].end - spans[first].start > max_chars
                                       or i - first >= max_sentences)
        if i == len(spans) or too_long:
            chunks.append(Chunk(first, i - 1, spans[first].start, spans[i - 1].end))
            first = i
    return chunks
