"""Lexical analysis: the stemmer joins the word forms a question and an article use, and English
questions get Indonesian search terms."""

from __future__ import annotations

import pytest

from index.lexical import content_terms, english_to_indonesian, language, tokenize


@pytest.mark.parametrize(("question_form", "article_form"), [
    ("tewas", "menewaskan"), ("dibom", "pemboman"), ("perintahkan", "memerintahkan"),
    ("lahir", "kelahiran"), ("koordinasi", "mengkoordinasikan")])
def test_word_forms_share_a_stem(question_form: str, article_form: str) -> None:
    assert tokenize(question_form) == tokenize(article_form)


def test_stopwords_and_numbers() -> None:
    assert tokenize("Siapa yang disebut dalam berita pada 14/03/2016?") == ["14", "03", "2016"]


def test_english_question_gets_indonesian_terms_and_keeps_names() -> None:
    terms = content_terms("How many people were killed in the attack near Aleppo?", "en")
    assert "aleppo" in terms and "tewas" in terms and "serang" in terms
    assert "the" not in terms and "how" not in terms
    assert len(terms) == len(set(terms))


def test_a_two_word_entry_wins_over_its_words() -> None:
    """"State Department" is "Departemen Luar Negeri", not "negara" + "departemen"."""
    terms = content_terms("Who is the spokesman of the US State Department?", "en")
    assert {"departemen", "luar", "negeri", "juru", "bicara", "as"} <= set(terms)
    assert "negara" not in terms and "state" not in terms


def test_lexicon_is_well_formed() -> None:
    lexicon = english_to_indonesian()
    assert len(lexicon) > 3000
    assert all(key.isascii() and key.count(" ") <= 1 and values and all(values) for key, values in lexicon.items())


def test_language_guess() -> None:
    assert language("Who is the spokesman of the US State Department?") == "en"
    assert language("Siapa juru bicara Departemen Luar Negeri AS?") == "id"
