"""Publication dates, kept and served as ISO 8601 (``2016-03-14``, or ``2016-03`` / ``2016`` when that is
all a source says), so that they sort and filter as strings.

A document's date comes from its metadata when it has one (a JSONL row's or an API caller's ``date``, a
saved page's own date), in any of the forms news archives use (ISO, ``14/03/2016``, ``14 Maret 2016``,
``March 14, 2016``). A plain-text article has none, so its date is the first explicit date in its
opening (the dateline: "Senin (14/03/2016)", "Selasa 20 September 2016"), recorded as inferred: a
reader of the API can tell the two apart. A date without a year ("pada 9 September") is not a date here.
"""

from __future__ import annotations

import datetime as dt
import re

OPENING_CHARS = 1000  # where a dateline stands: the first paragraph or two

# The one vocabulary of month and day names, Indonesian (with the older spellings Pebruari and Nopember,
# still in print) and English, lower case: dates here, answer types and the generated-answer check in rag/.
MONTH_NAMES = {name: number for number, names in enumerate([
    ("januari", "january"), ("februari", "pebruari", "february"), ("maret", "march"), ("april",),
    ("mei", "may"), ("juni", "june"), ("juli", "july"), ("agustus", "august"), ("september",),
    ("oktober", "october"), ("november", "nopember"), ("desember", "december")], start=1) for name in names}
MONTH_ABBREVIATIONS = {name: number for number, names in enumerate([
    ("jan",), ("feb", "peb"), ("mar",), ("apr",), (), ("jun",), ("jul",), ("agu", "agt", "ags", "aug"),
    ("sept", "sep"), ("okt", "oct"), ("nov", "nop"), ("des", "dec")], start=1) for name in names}
MONTHS = MONTH_NAMES | MONTH_ABBREVIATIONS
DAYS = {name: number for number, names in enumerate([
    ("senin", "monday"), ("selasa", "tuesday"), ("rabu", "wednesday"), ("kamis", "thursday"),
    ("jumat", "jum'at", "friday"), ("sabtu", "saturday"), ("minggu", "sunday")], start=1) for name in names}
_MONTH = "|".join(sorted(MONTHS, key=len, reverse=True))
_YEAR = r"((?:19|20)\d\d)"
_ISO = re.compile(rf"(?<!\d){_YEAR}-(\d\d)-(\d\d)(?!\d)")  # a time may follow: 2016-03-14T08:30
_NUMERIC = re.compile(rf"(?<![\d/.])(\d{{1,2}})[/.-](\d{{1,2}})[/.-]{_YEAR}\b")  # day first: 14/03/2016
_DAY_MONTH = re.compile(rf"\b(\d{{1,2}})\s+({_MONTH})\.?,?\s+{_YEAR}\b", re.IGNORECASE)  # 14 Maret 2016
_MONTH_DAY = re.compile(rf"\b({_MONTH})\.?\s+(\d{{1,2}}),?\s+{_YEAR}\b", re.IGNORECASE)  # March 14, 2016
_PARTIAL = re.compile(rf"{_YEAR}(?:-(\d\d))?")


def _day(year: str, month: str | int, day: str | int) -> str | None:
    try:
        return dt.date(int(year), int(month), int(day)).isoformat()
    except ValueError:  # 31/02/2016, or a month of 13: not a date
        return None


def _dates_in(text: str) -> list[tuple[int, str]]:
    """(position, ISO day) of every explicit full date in ``text``."""
    found = []
    for m in _ISO.finditer(text):
        found.append((m.start(), _day(m[1], m[2], m[3])))
    for m in _NUMERIC.finditer(text):
        found.append((m.start(), _day(m[3], m[2], m[1])))
    for m in _DAY_MONTH.finditer(text):
        found.append((m.start(), _day(m[3], MONTHS[m[2].lower()], m[1])))
    for m in _MONTH_DAY.finditer(text):
        found.append((m.start(), _day(m[3], MONTHS[m[1].lower()], m[2])))
    return sorted((pos, day) for pos, day in found if day)


def iso_date(value: str) -> str | None:
    """A metadata date as ISO 8601 (its time of day dropped), or None when it is not a date at all."""
    value = value.strip()
    iso = _ISO.match(value)
    if iso:
        return _day(iso[1], iso[2], iso[3])
    partial = _PARTIAL.fullmatch(value)
    if partial:
        if partial[2] and not 1 <= int(partial[2]) <= 12:
            return None
        return value
    dates = _dates_in(value)
    return dates[0][1] if dates else None


def whole_date(value: str) -> str | None:
    """A date a person typed (a filter's bound) as ISO 8601: the whole value must be one date, in any form
    ``iso_date`` reads, with nothing around it ("' OR 1=1 -- 2016-01-01" is not a date)."""
    value = value.strip()
    if _PARTIAL.fullmatch(value) or any(pattern.fullmatch(value) for pattern in (_ISO, _NUMERIC, _DAY_MONTH,
                                                                                  _MONTH_DAY)):
        return iso_date(value)
    return None


def inferred_date(text: str) -> str | None:
    """The first explicit date in the opening of an article's text (its dateline), if any."""
    dates = _dates_in(text[:OPENING_CHARS])
    return dates[0][1] if dates else None
