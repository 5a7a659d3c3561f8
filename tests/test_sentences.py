"""Sentence splitting: Indonesian cases, and offsets that are exact on any text."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from index.sentences import group_chunks, split_sentences
from tests.helpers import CORPUS


def texts(text: str) -> list[str]:
    return [s.text for s in split_sentences(text)]


def test_abbreviations_titles_and_initials_do_not_end_sentences() -> None:
    text = ("Kantornya di Jl. Sudirman No. 5 dekat rumah dr. Andi dan Prof. Budi. Kolonel John J. Thomas "
            "bicara. Dia datang.")
    assert texts(text) == ["Kantornya di Jl. Sudirman No. 5 dekat rumah dr. Andi dan Prof. Budi.",
                           "Kolonel John J. Thomas bicara.", "Dia datang."]


def test_decimal_numbers_and_thousands_stay_whole() -> None:
    assert texts("Inflasi naik 3.5 persen menjadi Rp 1.250.000 per bulan. Harga turun 2,5 persen.") == [
        "Inflasi naik 3.5 persen menjadi Rp 1.250.000 per bulan.", "Harga turun 2,5 persen."]


def test_curly_quotes_close_the_sentence_and_lowercase_continues_it() -> None:
    text = "“Kami melihat tidak ada indikasi.” Jelas Kirby. “Apa?” tanya dia. Kesepakatan… mereka patuh."
    assert texts(text) == ["“Kami melihat tidak ada indikasi.”", "Jelas Kirby.", "“Apa?” tanya dia.",
                           "Kesepakatan… mereka patuh."]


def test_country_abbreviation_as_ends_a_sentence_only_before_a_new_one() -> None:
    assert texts("Rusia menolak usulan AS. Pihak AS kecewa.") == ["Rusia menolak usulan AS.", "Pihak AS kecewa."]


def test_lines_without_a_final_period_are_sentences() -> None:
    text = "Judul Berita Tanpa Titik\nIsi pertama. Isi kedua\n\n  Paragraf baru"
    assert texts(text) == ["Judul Berita Tanpa Titik", "Isi pertama.", "Isi kedua", "Paragraf baru"]


def test_repeated_sentences_get_their_own_offsets() -> None:
    text = "Ya. Dia pergi. Ya. Dia pergi."
    spans = split_sentences(text)
    assert [(s.start, s.end) for s in spans] == [(0, 3), (4, 14), (15, 18), (19, 29)]


def test_overlong_runs_are_cut_at_whitespace() -> None:
    text = "kata " * 1000
    spans = split_sentences(text, max_chars=300)
    assert all(len(s.text) <= 300 for s in spans)
    assert " ".join(s.text for s in spans) == text.strip()


def test_seed_articles_split_with_exact_offsets() -> None:
    for path in CORPUS.glob("*.txt"):
        text = path.read_text(encoding="utf-8")
        spans = split_sentences(text)
        assert len(spans) >= 15
        assert all(text[s.start : s.end] == s.text for s in spans)
    kirby = CORPUS / "000_3befbf9f5ffaf878.txt"
    assert ("“Setidaknya, kami sadar, tidak ada rencana kerjasama militer untuk pembagian kerja dengan parameter "
            "geografis seperti yang disarankan oleh Menteri Luar Negeri Sergey Lavrov,” kata juru bicara "
            "Departemen Luar Negeri John Kirby.") in texts(kirby.read_text(encoding="utf-8"))


def _check_spans(text: str) -> None:
    spans = split_sentences(text, max_chars=80)
    previous_end = 0
    for s in spans:
        assert text[s.start : s.end] == s.text
        assert s.text == s.text.strip() and s.text
        assert s.start >= previous_end
        previous_end = s.end
    covered = set()
    for s in spans:
        covered.update(range(s.start, s.end))
    # Nothing visible is lost: every non-whitespace character lies inside some sentence.
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


@settings(max_examples=400, deadline=None)
@given(st.text())
def test_offsets_are_exact_on_arbitrary_unicode(text: str) -> None:
    _check_spans(text)


_pieces = st.sampled_from(["Jl.", "No.", "AS.", "dr.", " ", "\n", "“", "”", ".", "?", "!", "…", "3.5",
                           "Kata", "kata", "J.", "\u2028", "\r\n", "\t", "😀", "ℌ", "İ"])


@settings(max_examples=400, deadline=None)
@given(st.lists(_pieces, max_size=60).map("".join))
def test_offsets_are_exact_on_punctuation_heavy_text(text: str) -> None:
    _check_spans(text)


@given(st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=40))
def test_chunks_cover_every_sentence_once_in_order(lengths: list[int]) -> None:
    text = " ".join("a" * (n - 1) + "." for n in lengths)
    spans = split_sentences(text, max_chars=10_000)
    chunks = group_chunks(spans, max_chars=700, max_sentences=6)
    assert [i for c in chunks for i in range(c.first, c.last + 1)] == list(range(len(spans)))
    assert all(c.start == spans[c.first].start and c.end == spans[c.last].end for c in chunks)
