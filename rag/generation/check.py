"""A generated answer over the cited sentences, kept only where each sentence is backed by them.

The LLM (rag/generation/client.py) gets the question, the extractive answer's cited sentences numbered ``[n]`` and the
reader's short answer, and writes 1-3 sentences in the question's language, each ending in ``[n]``. Every
sentence it writes is checked before anyone sees it:

- it must cite at least one of the given sentences. A sentence the model left without ``[n]``, or cited
  to a sentence that does not state its facts, is cited to the first given sentence that states all of
  its names, numbers and dates instead (marked ``cite_assigned``); one without any such fact, or that no
  single given sentence backs, is dropped;
- each name, number and date in it must occur in the sentences it cites. A plain translation counts:
  "Russia" for "Rusia", "three" for "tiga", "January" for "Januari", via the English-Indonesian lexicon
  the retrieval already uses (index/data/lexicon_en_id.tsv), and 1,500 for 1.500.

A sentence that fails is dropped (with the reason); when none survives, the extractive answer stands.
Citations keep their exact offsets: generation never changes them, it only adds ``generated``.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache

from index.dates import DAYS, MONTH_NAMES
from index.lexical import STOPWORDS_EN, STOPWORDS_ID, english_to_indonesian, language, words
from index.sentences import ends_with_abbreviation
from rag.generation.client import LLMClient, LLMUnavailable
from rag.question_types import NUMBER  # what counts as a number, in questions and answers alike

_LANGUAGE_NAMES = {"en": "English", "id": "Indonesian (Bahasa Indonesia)"}

SYSTEM_PROMPT = (
    "You answer questions about news articles using only the numbered sentences you are given. "
    "Answer in {language}, in one to three short sentences. End every sentence with the number of the "
    "sentence it comes from in square brackets, like [1]. Copy names, numbers and dates exactly as the "
    "sentences give them. Never add a fact the sentences do not state."
)

_MARKERS = re.compile(r"\s*\[(\d+(?:\s*,\s*\d+)*)\]")
# A sentence ends at . ! or ? (with closing quotes or brackets) followed by space or the end, then any
# [n] markers: "... di Aleppo. [1]" and "... in Aleppo [1]." both end there.
_SENTENCE_END = re.compile(r"(?:[.!?]+[\"'”’)]*(?:\s*\[\d+(?:\s*,\s*\d+)*\])*|(?:\s*\[\d+(?:\s*,\s*\d+)*\])+[.!?]*)"
                           r"(?=\s|$)")
_CAPITALISED = re.compile(r"[^\W\d_][\w'’-]*", re.UNICODE)

_NUMBER_WORDS = {
    "two": "2", "three": "3", "four": "4", "five": "5", "six": "6", "seven": "7", "eight": "8",
    "nine": "9", "ten": "10", "eleven": "11", "twelve": "12", "dua": "2", "tiga": "3", "empat": "4",
    "lima": "5", "enam": "6", "tujuh": "7", "delapan": "8", "sembilan": "9", "sepuluh": "10",
    "sebelas": "11", "twenty": "20", "thirty": "30", "forty": "40", "fifty": "50", "sixty": "60",
    "seventy": "70", "eighty": "80", "ninety": "90", "hundred": "100", "thousand": "1000",
    "seratus": "100", "seribu": "1000",
}
@dataclass
class GeneratedSentence:
    text: str
    cites: list[int]
    reason: str | None = None  # why it was dropped; None when kept
    # The model wrote no [n], or one whose sentence does not state its facts: the check cited the first
    # given sentence that states all of them instead.
    cite_assigned: bool = False


@dataclass
class Generated:
    """``text`` is the kept sentences (with their ``[n]``), or None when the extractive answer stands
    (``note`` says why: nothing passed the check, or the endpoint failed)."""

    text: str | None
    model: str
    checked_sentences: list[GeneratedSentence] = field(default_factory=list)
    dropped_sentences: list[GeneratedSentence] = field(default_factory=list)
    note: str | None = None
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {"text": self.text, "model": self.model,
                "checked_sentences": [asdict(s) for s in self.checked_sentences],
                "dropped_sentences": [asdict(s) for s in self.dropped_sentences],
                "note": self.note, "seconds": round(self.seconds, 3)}


def _fold(text: str) -> str:
    """Casefolded, without accents or possessive 's, apostrophes as spaces: what a fact is matched on."""
    text = unicodedata.normalize("NFKD", text.casefold().replace("’", "'"))
    text = "".join(c for c in text if not unicodedata.combining(c))
    return re.sub(r"'s\b", "", text)


def _numbers(text: str) -> set[str]:
    """Numbers with their separators taken out (1.500 = 1,500 = 1500), and number words as digits."""
    found = {re.sub(r"[.,]", "", n) for n in NUMBER.findall(text)}
    found.update(_NUMBER_WORDS[w] for w in re.findall(r"\w+", _fold(text)) if w in _NUMBER_WORDS)
    return found


# Words that open a sentence without being names, beyond the lexicon's vocabulary.
_SENTENCE_OPENERS = frozenset("""
    according however meanwhile yes both after before during while although because based currently
    earlier later today yesterday there in on among despite namun menurut sementara selain sebelumnya
    kemudian pihak sejumlah
    """.split())


@lru_cache(maxsize=1)
def _ordinary_words() -> frozenset[str]:
    """Words that open a sentence without being a name: function words of both languages, common
    openers and the lexicon's vocabulary on both sides ("Officials", "Police", "Lembaga")."""
    lexicon = english_to_indonesian()
    indonesian = {w for translations in lexicon.values() for t in translations for w in t.split()}
    return frozenset(STOPWORDS_EN | STOPWORDS_ID | _SENTENCE_OPENERS | set(lexicon) | indonesian)


def _name_runs(sentence: str) -> list[list[str]]:
    """Runs of consecutive capitalised words, folded ("John Kirby", "State Department"; "US-Russia" is
    two), except months and days, which are dates, and an ordinary word opening the sentence."""
    runs: list[list[str]] = []
    previous_end = -2
    for i, match in enumerate(_CAPITALISED.finditer(sentence)):
        parts = [p for p in match.group().split("-") if p]
        for part in parts:
            word = _fold(part).strip("'")
            if not part[:1].isupper() or not word or word in MONTH_NAMES or word in DAYS:
                previous_end = -2
                continue
            acronym = len(part) > 1 and part.isupper()  # "US", "PBB": a name even where "us" is a word
            if (i == 0 or word in STOPWORDS_EN or word in STOPWORDS_ID) and word in _ordinary_words() \
                    and not acronym:
                continue
            joined = match.start() - previous_end <= 1 and runs and len(parts) == 1
            if joined:
                runs[-1].append(word)
            else:
                runs.append([word])
        previous_end = match.end() if parts and match.group()[:1].isupper() else -2
    return runs


def _has_phrase(phrase: str, folded_words: list[str]) -> bool:
    target = phrase.split()
    return any(folded_words[i : i + len(target)] == target for i in range(len(folded_words) - len(target) + 1))


# Names the lexicon (written for retrieval) leaves out, as the Indonesian press writes them.
_NAME_TRANSLATIONS = {
    "united states": ["amerika serikat", "as"], "united kingdom": ["inggris"], "uk": ["inggris"],
    "european union": ["uni eropa", "ue"], "middle east": ["timur tengah"], "south korea": ["korea selatan"],
    "north korea": ["korea utara"], "saudi arabia": ["arab saudi"], "netherlands": ["belanda"],
}


def _unsupported_names(run: list[str], source_words: list[str]) -> list[str]:
    """The words of a run of names that neither occur in the sources nor translate (two words at a time
    first: "state department" -> "kementerian luar negeri") to something that does."""
    lexicon, missing, i = english_to_indonesian(), [], 0
    while i < len(run):
        for width in (2, 1):
            phrase = " ".join(run[i : i + width])
            translations = lexicon.get(phrase, []) + _NAME_TRANSLATIONS.get(phrase, [])
            if len(run[i : i + width]) == width and (_has_phrase(phrase, source_words) or any(
                    _has_phrase(t, source_words) for t in translations)):
                i += width
                break
        else:
            missing.append(run[i])
            i += 1
    return missing


def _date_words(text: str) -> list[str]:
    """Folded words, an apostrophe inside a word dropped: "Jum'at" is the day "jumat"."""
    return [w.replace("'", "") for w in re.findall(r"\w+(?:'\w+)*", _fold(text))]


def unsupported_facts(sentence: str, sources: Sequence[str]) -> list[str]:
    """The names, numbers and dates of ``sentence`` (markers taken out) that ``sources`` do not state,
    directly or as a lexicon translation."""
    source_text = " ".join(sources)
    source_words = re.findall(r"\w+", _fold(source_text))
    missing = [n for n in sorted(_numbers(sentence)) if n not in _numbers(source_text)]
    source_dates = set(_date_words(source_text))
    months = {MONTH_NAMES[w] for w in source_dates if w in MONTH_NAMES}
    days = {DAYS[w] for w in source_dates if w in DAYS}
    for word in _date_words(sentence):
        if (word in MONTH_NAMES and MONTH_NAMES[word] not in months) or (word in DAYS and DAYS[word] not in days):
            missing.append(word)
    for run in _name_runs(sentence):
        missing.extend(_unsupported_names(run, source_words))
    return missing


def split_generated(text: str) -> tuple[list[tuple[str, list[int]]], str]:
    """The complete sentences of ``text``, each with the ``[n]`` it cites (markers taken out of the text),
    and what follows the last complete one (a sentence still being written). Markers standing alone
    ("[1]." before a sentence, or after one on the next line) belong to their neighbour: the one before,
    else the one after."""
    sentences: list[tuple[str, list[int]]] = []
    start, loose = 0, set[int]()
    for match in _SENTENCE_END.finditer(text):
        if match.group().startswith(".") and ends_with_abbreviation(text, match.start()):
            continue  # "John J. Thomas", "Kol. Thomas": the sentence goes on
        raw = text[start : match.end()].strip()
        start = match.end()
        cites = {int(n) for group in _MARKERS.findall(raw) for n in group.split(",")}
        plain = _MARKERS.sub("", raw).strip()
        if not re.search(r"\w", plain):  # markers (and punctuation) alone
            if sentences:
                sentences[-1] = (sentences[-1][0], sorted(set(sentences[-1][1]) | cites))
            else:
                loose |= cites
            continue
        sentences.append((plain, sorted(cites | loose)))
        loose = set()
    return sentences, text[start:]


def _check(sentence: str, cites: list[int], numbered: dict[int, str], question: str) -> GeneratedSentence:
    valid = [n for n in cites if n in numbered]
    assigned = False
    has_facts = bool(unsupported_facts(sentence, []))  # names, numbers or dates to look up
    if has_facts and (not valid or unsupported_facts(sentence, [numbered[n] for n in valid])):
        # No marker, or one whose sentence does not back it: the first given sentence that does.
        backing = [n for n in sorted(numbered) if not unsupported_facts(sentence, [numbered[n]])][:1]
        if backing:
            valid, assigned = backing, True
    shown = f"{sentence} " + "".join(f"[{n}]" for n in valid)
    if not valid:
        return GeneratedSentence(sentence, cites, "cites none of the given sentences")
    if set(words(sentence)) <= set(words(question)):
        return GeneratedSentence(shown.strip(), valid, "only repeats the question")
    missing = unsupported_facts(sentence, [numbered[n] for n in valid])
    if missing:
        return GeneratedSentence(shown.strip(), valid, "not in its cited sentences: " + ", ".join(missing))
    return GeneratedSentence(shown.strip(), valid, cite_assigned=assigned)


# One worked exchange before the question: the Qwen2.5-Coder 0.5B wrote no [n] after the instruction alone
# on corpus/ questions, and did after this example given as an earlier turn (an example inside the system
# prompt had it copy the example's names instead).
_EXAMPLE = {
    "en": ("Who inaugurated the Jatigede dam, and when?",
           "President Joko Widodo inaugurated the Jatigede dam on 12 May 2018 [2]."),
    "id": ("Siapa yang meresmikan Bendungan Jatigede, dan kapan?",
           "Presiden Joko Widodo meresmikan Bendungan Jatigede pada 12 Mei 2018 [2]."),
}
_EXAMPLE_SENTENCES = {1: "Bendungan Jatigede mengairi 5.000 hektare sawah.",
                      2: "Presiden **Joko Widodo** meresmikan Bendungan Jatigede pada 12 Mei 2018."}


def _question_message(question: str, numbered: dict[int, str], short_answer: str | None = None) -> str:
    """The sentences and the question; the reader's short answer is marked **in bold** where the first
    sentence holds it (a separate "the answer is probably" line was copied verbatim by small models)."""
    lines = []
    for n, sentence in numbered.items():
        if n == min(numbered) and short_answer and short_answer in sentence:
            sentence = sentence.replace(short_answer, f"**{short_answer}**", 1)
        lines.append(f"[{n}] {sentence}")
    return "Sentences:\n" + "\n".join(lines) + f"\nQuestion: {question}"


def build_messages(question: str, numbered: dict[int, str], short_answer: str | None) -> list[tuple[str, str]]:
    """The chat the LLM gets: the rules, one worked example, then the cited sentences and the question."""
    lang = language(question)
    example_question, example_answer = _EXAMPLE[lang]
    return [("system", SYSTEM_PROMPT.format(language=_LANGUAGE_NAMES[lang])),
            ("user", _question_message(example_question, _EXAMPLE_SENTENCES)),
            ("assistant", example_answer),
            ("user", _question_message(question, numbered, short_answer))]


class Generation:
    """Iterate to get each checked sentence as soon as it is complete (what the chat streams); after the
    iteration, ``result`` holds the whole ``Generated``."""

    def __init__(self, client: LLMClient, question: str, numbered: dict[int, str],
                 short_answer: str | None = None) -> None:
        self._client, self._question, self._numbered, self._short = client, question, numbered, short_answer
        self.result: Generated | None = None

    def __iter__(self) -> Iterator[str]:
        began = time.perf_counter()
        # One deadline for the whole answer (the model list included), however the server sends it.
        self._client.prepare()
        deadline = time.monotonic() + self._client.settings.timeout
        model = self._client.model_name(deadline)
        kept: list[GeneratedSentence] = []
        dropped: list[GeneratedSentence] = []

        def judge(pieces: list[tuple[str, list[int]]]) -> Iterator[str]:
            for sentence, cites in pieces:
                checked = _check(sentence.replace("**", ""), cites, self._numbered, self._question)
                (dropped if checked.reason else kept).append(checked)
                if not checked.reason:
                    yield checked.text

        buffer, note = "", None
        try:
            for delta in self._client.stream(build_messages(self._question, self._numbered, self._short), deadline):
                buffer += delta
                complete, rest = split_generated(buffer)
                # The last complete sentence may still gain [n] markers: wait for the next word.
                if complete and (rest.strip() and not rest.lstrip().startswith("[")):
                    yield from judge(complete)
                    buffer = rest
            complete, rest = split_generated(buffer)
            yield from judge(complete + ([(rest.strip(), [])] if rest.strip() else []))
        except LLMUnavailable as e:
            note = f"{e}; the answer is the extractive one"
            kept = []  # a reply cut midway is not shown in part
        if not kept and note is None:
            note = "no generated sentence passed the check; the answer is the extractive one"
        self.result = Generated(" ".join(s.text for s in kept) or None, model, kept, dropped, note,
                                time.perf_counter() - began)

    def run(self) -> Generated:
        for _ in self:
            pass
        assert self.result is not None
        return self.result
