"""What kind of answer a factoid question expects, and whether a sentence offers one.

A cheap, language-aware prior for the sentence scorer: "Siapa/Who" wants a name, "Kapan/When" a
date, "Berapa/How many" a number, "Di mana/Where" a place name, each one that the question does not
already contain (a sentence that only repeats the question's own name is not an answer to it).
"""

from __future__ import annotations

import re

from index.dates import DAYS, MONTHS

_QUESTION_TYPES = [
    ("date", re.compile(r"\b(kapan|kapankah|tanggal berapa|tahun berapa|bulan apa|hari apa|when|what date|"
                        r"what year|which year|what day)\b", re.I)),
    ("number", re.compile(r"\b(berapa|berapakah|how many|how much|how long|how old|what percentage|"
                          r"what number)\b", re.I)),
    ("person", re.compile(r"\b(siapa|siapakah|who|whom|whose)\b", re.I)),
    ("place", re.compile(r"\b(di mana|dimana|di manakah|ke mana|kemana|dari mana|where|which city|"
                         r"which country|kota apa|negara apa|kota mana|negara mana|provinsi apa)\b", re.I)),
]

NUMBER = re.compile(r"\d+(?:[.,]\d+)*")
_DATE_WORDS = "|".join(sorted(MONTHS.keys() | DAYS.keys(), key=len, reverse=True))
_DATE = re.compile(r"\b(?:\d{1,2}/\d{1,2}/\d{2,4}|(?:19|20)\d{2}|" + _DATE_WORDS + r")\b", re.I)
_NAME = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w'-]+")  # capitalised word, not sentence-initial


def question_type(question: str) -> str | None:
    for name, pattern in _QUESTION_TYPES:
        if pattern.search(question):
            return name
    return None


def _new(found: list[str], question: str) -> bool:
    q = question.lower()
    return any(f.lower() not in q for f in found)


def offers_answer(kind: str | None, sentence: str, question: str) -> bool:
    if kind == "number":
        return _new(NUMBER.findall(sentence), question)
    if kind == "date":
        return _new(_DATE.findall(sentence), question)
    if kind in ("person", "place"):
        return _new(_NAME.findall(sentence), question)
    return False
