"""Dates (index/dates.py): metadata dates become ISO 8601; a plain-text article's date is read from its
dateline and recorded as inferred; what is not a date is refused with a reason."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from index.dates import inferred_date, iso_date
from index.documents import make_document, read_paths
from index.errors import InputError
from tests.helpers import CORPUS


@pytest.mark.parametrize(("value", "iso"), [
    ("2016-03-14", "2016-03-14"), ("2016-03-14T08:30:00+07:00", "2016-03-14"), ("2016-03", "2016-03"),
    ("2016", "2016"), ("14/03/2016", "2016-03-14"), ("14-3-2016", "2016-03-14"), ("14 Maret 2016", "2016-03-14"),
    ("Senin, 14 Maret 2016 08:30 WIB", "2016-03-14"), ("20 Sept. 2016", "2016-09-20"),
    ("March 14, 2016", "2016-03-14"), ("Agustus 17, 1945", "1945-08-17"), ("1 Des 2023", "2023-12-01"),
    ("kemarin", None), ("31/02/2016", None), ("2016-13", None), ("14 Maret", None), ("", None),
])
def test_metadata_dates_become_iso(value: str, iso: str | None) -> None:
    assert iso_date(value) == iso


@pytest.mark.parametrize(("text", "date"), [
    ("WASHINGTON, (Panjimas.com) – kata Kirby, hari Senin (14/03/2016), dilansir oleh Anadolu Agency.",
     "2016-03-14"),
    ("Gencatan senjata dicapai pada 9 September. Juru bicara berbicara pada Selasa 20 September 2016.",
     "2016-09-20"),  # "9 September" has no year: not a date
    ("JAKARTA - Harga beras naik pekan ini.", None),
    ("Pada 31/02/2016 tidak ada apa-apa; rapat digelar 2 Januari 2017.", "2017-01-02"),
    ("x" * 1000 + " 14 Maret 2016", None),  # past the opening
])
def test_a_dateline_is_found_in_the_opening(text: str, date: str | None) -> None:
    assert inferred_date(text) == date


def test_the_seed_articles_get_their_dateline_dates_as_inferred() -> None:
    dates = {d.doc_id: (d.date, d.date_inferred) for d in read_paths([CORPUS])}
    assert dates == {"000_3befbf9f5ffaf878": ("2016-03-14", True), "002_bf2d7060419eb056": ("2016-09-20", True)}


def test_a_given_date_wins_and_is_not_inferred(tmp_path: Path) -> None:
    rows = [{"id": "a", "text": "Kata Kirby, Senin (14/03/2016).", "date": "20 September 2016"},
            {"id": "b", "text": "Kata Kirby, Senin (14/03/2016)."}]
    path = tmp_path / "berita.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    got = {d.doc_id: (d.date, d.date_inferred) for d in read_paths([path])}
    assert got == {"a": ("2016-09-20", False), "b": (None, False)}  # JSONL rows say their own date or none


def test_a_date_that_is_not_a_date_is_refused_with_a_reason(tmp_path: Path) -> None:
    path = tmp_path / "berita.jsonl"
    path.write_text(json.dumps({"id": "a", "text": "Teks.", "date": "kemarin sore"}), encoding="utf-8")
    with pytest.raises(InputError, match=r"berita.jsonl:1: 'date' 'kemarin sore' is not a date \(use YYYY-MM-DD\)"):
        read_paths([path])


def test_the_inferred_flag_changes_the_hash_only_when_set() -> None:
    plain = make_document("a", "Teks tanpa tanggal.")
    assert plain.content_hash == make_document("a", "Teks tanpa tanggal.", infer_date=True).content_hash
    given = make_document("a", "Teks, Senin (14/03/2016).", date="2016-03-14")
    inferred = make_document("a", "Teks, Senin (14/03/2016).", infer_date=True)
    assert inferred.date == given.date and inferred.content_hash != given.content_hash
