"""Lexical analysis shared by BM25 and the sentence scorer: Indonesian stemming (Sastrawi), stopwords,
and a cheap language guess (BM25 on Indonesian text cannot help an English question much).

Sastrawi rather than Snowball: Snowball's Indonesian rules leave paraphrases apart that a question and
an article often use ("menewaskan" -> "ewas" but "tewas" -> "tewas"; "dibom" / "pemboman"), which made
answerable questions look unanswerable. Sastrawi checks candidate roots against a dictionary.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

from Sastrawi.Stemmer.StemmerFactory import StemmerFactory

# Frequent Indonesian function words, question words and words about the news itself ("disebut
# dalam berita"); content words stay searchable.
STOPWORDS_ID = frozenset(
    """
    yang dan di ke dari ini itu dengan untuk pada adalah dalam tidak akan juga atau oleh karena
    sebagai telah sudah bahwa ada para saat bisa dapat tersebut lebih masih hanya agar jika kalau
    namun tetapi tapi serta maka pun lagi kami kita saya aku anda dia ia mereka beliau kamu nya apa
    apakah siapa siapakah kapan kapankah dimana mana manakah berapa berapakah bagaimana mengapa
    kenapa yaitu yakni sebuah seorang suatu sang si para tentang terhadap hingga sampai antara
    secara menjadi merupakan oleh sejak setelah sebelum ketika sedang belum pernah harus ya tak
    bukan lah kah pula demikian begitu sangat paling per tiap setiap semua seluruh
    berita artikel disebut disebutkan menurut
    """.split()
)

STOPWORDS_EN = frozenset(
    """
    the a an of to in on at for from by with and or but is are was were be been being has have had
    do does did what who whom whose which when where why how that this these those it its he she
    they them his her their i we you our your not no as into about than then there here will would
    can could should may might must also said say says
    """.split()
)

_WORD = re.compile(r"\w+", re.UNICODE)

# Names the analysis below; a BM25 index built with another analysis is rebuilt (index/bm25.py).
ANALYZER = "sastrawi/" + hashlib.sha256(" ".join(sorted(STOPWORDS_ID)).encode()).hexdigest()[:12]


@lru_cache(maxsize=1)
def _sastrawi():
    return StemmerFactory().create_stemmer(isDev=False)


@lru_cache(maxsize=500_000)
def stem(word: str) -> str:
    """The root of one lowercased word; numbers and mixed tokens ("covid19") stay as they are."""
    if not word.isalpha():
        return word
    return _sastrawi().stem(word) or word


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def tokenize(text: str) -> list[str]:
    """Lowercased, stopword-free, stemmed tokens (used for documents and queries alike)."""
    return [stem(w) for w in words(text) if w not in STOPWORDS_ID]


def language(text: str) -> str:
    """'en' when the text has more English than Indonesian function words, else 'id'."""
    found = words(text)
    english = sum(w in STOPWORDS_EN for w in found)
    indonesian = sum(w in STOPWORDS_ID for w in found)
    return "en" if english > indonesian else "id"


_NAME_OR_NUMBER = re.compile(r"\b(?:[A-Z][\w-]*|\d[\d.,/:-]*)\b")


LEXICON = Path(__file__).parent / "data" / "lexicon_en_id.tsv"


@lru_cache(maxsize=1)
def english_to_indonesian() -> dict[str, list[str]]:
    """A general English -> Indonesian news vocabulary (``data/lexicon_en_id.tsv``, ~3,700 words)."""
    pairs = (line.split("\t", 1) for line in LEXICON.read_text(encoding="utf-8").splitlines()
             if line and not line.startswith("#"))
    return {english: indonesian.split(",") for english, indonesian in pairs}


def content_terms(text: str, lang: str) -> list[str]:
    """The question terms that can match Indonesian text, stemmed like document tokens: all content
    words of an Indonesian question; the names and numbers of an English one plus the Indonesian words
    the lexicon gives for its other content words (BM25 cannot match English words themselves)."""
    if lang == "id":
        return tokenize(text)
    lexicon = english_to_indonesian()
    found, translated, in_pairs, i = words(text), [], set(), 0
    while i < len(found):  # a two-word entry ("state department") before its words' own ones
        pair = " ".join(found[i : i + 2])
        if pair in lexicon:
            translated += lexicon[pair]
            in_pairs.update(found[i : i + 2])
            i += 2
            continue
        if found[i] not in STOPWORDS_EN:
            translated += lexicon.get(found[i], ())
        i += 1
    kept = [m.group(0) for m in _NAME_OR_NUMBER.finditer(text)
            if m.group(0).lower() not in STOPWORDS_EN and m.group(0).lower() not in in_pairs]
    return list(dict.fromkeys(tokenize(" ".join(kept + translated))))
