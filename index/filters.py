"""Restricting a question to a publication period and to publishers (``--since/--until/--source``).

A filter is applied inside retrieval, so a filtered question still gets its best candidates from the
documents it allows: Chroma's ``where`` on each chunk vector's metadata (``filter_fields``, written with
the vector) and the same restriction on BM25, from the store's columns of the same fields
(``DocumentStore.allowed_documents``). Both are built here, side by side, from one ``DocumentFilter``.

Dates are ISO strings that may be partial (index/dates.py): a document dated ``2016`` is allowed by a
filter that reaches into 2016 (its date could be any day of it), and ``--until 2016-03`` ends on the
last day of March. A document without a date is left out by any date bound: nothing says it is inside
it. Publishers are compared as written, ignoring case and a leading ``www.``.
"""

from __future__ import annotations

import calendar
from collections.abc import Sequence
from dataclasses import dataclass

from llama_index.core.vector_stores.types import FilterCondition, FilterOperator, MetadataFilter, MetadataFilters

from index.dates import whole_date
from index.documents import checked_text
from index.errors import InputError

MAX_SOURCES = 50
_WORDS = {
    "en": {"between": "published {} to {}", "since": "published since {}", "until": "published until {}",
           "source": "source ", "or": "or"},
    "id": {"between": "terbit {} s.d. {}", "since": "terbit sejak {}", "until": "terbit sampai {}",
           "source": "penerbit ", "or": "atau"},
}


def first_day(date: str) -> int:
    """The first day an ISO date (maybe partial) can mean, as the number YYYYMMDD."""
    parts = [int(p) for p in date.split("-")]
    year, month, day = [*parts, 1, 1][:3]
    return year * 10000 + month * 100 + day


def last_day(date: str) -> int:
    """The last day an ISO date (maybe partial) can mean, as the number YYYYMMDD."""
    parts = [int(p) for p in date.split("-")]
    year = parts[0]
    month = parts[1] if len(parts) > 1 else 12
    day = parts[2] if len(parts) > 2 else calendar.monthrange(year, month)[1]
    return year * 10000 + month * 100 + day


def source_key(source: str | None) -> str:
    """A publisher as filters compare it: ``Kompas.com`` = ``www.kompas.com`` = ``kompas.com``."""
    key = (source or "").strip().casefold()
    return key[4:] if key.startswith("www.") else key


def filter_fields(date: str | None, source: str | None) -> dict[str, int | str]:
    """What filters read of a document, kept with each chunk vector (Chroma metadata) and each stored
    document (columns of the same names): its publisher's key and the first and last day its date can
    mean. Chroma keeps no None, so an undated document has no day bounds there (NULL in the store)."""
    fields: dict[str, int | str] = {"source_key": source_key(source)}
    if date:
        fields["published_from"] = first_day(date)
        fields["published_to"] = last_day(date)
    return fields


@dataclass(frozen=True)
class DocumentFilter:
    since: str | None = None  # ISO, inclusive
    until: str | None = None  # ISO, inclusive
    sources: tuple[str, ...] = ()  # as the user wrote them

    @classmethod
    def parse(cls, since: str | None = None, until: str | None = None,
              source: str | Sequence[str] | None = None) -> DocumentFilter | None:
        """A filter from user input (None when nothing restricts); a bad value raises InputError."""
        since_iso, until_iso = _bound(since, "since"), _bound(until, "until")
        if since_iso and until_iso and first_day(since_iso) > last_day(until_iso):
            raise InputError(f"'since' ({since_iso}) is after 'until' ({until_iso})")
        given = [source] if isinstance(source, str) else list(source or [])
        if not all(isinstance(s, str) for s in given):
            raise InputError("'source' must be a publisher's name or a list of them")
        sources = tuple(dict.fromkeys(s.strip() for s in given if checked_text(s, "source") and s.strip()))
        for name in sources:
            if not source_key(name):  # "www." would match every document without a publisher
                raise InputError(f"'source' {name!r} names no publisher")
        if len(sources) > MAX_SOURCES:
            raise InputError(f"'source' names {len(sources)} publishers; the limit is {MAX_SOURCES}")
        if not (since_iso or until_iso or sources):
            return None
        return cls(since_iso, until_iso, sources)

    @property
    def keys(self) -> set[str]:
        return {source_key(s) for s in self.sources}

    def vector_filters(self) -> MetadataFilters:
        """The filter on chunk vectors' ``filter_fields`` (llama-index turns it into Chroma's ``where``)."""
        parts = []
        if self.sources:
            parts.append(MetadataFilter(key="source_key", operator=FilterOperator.IN, value=sorted(self.keys)))
        if self.since:
            parts.append(MetadataFilter(key="published_to", operator=FilterOperator.GTE,
                                        value=first_day(self.since)))
        if self.until:
            parts.append(MetadataFilter(key="published_from", operator=FilterOperator.LTE,
                                        value=last_day(self.until)))
        return MetadataFilters(filters=parts, condition=FilterCondition.AND)  # type: ignore[arg-type]

    def sql_where(self) -> tuple[str, list[int | str]]:
        """The same filter on the store's ``filter_fields`` columns (a NULL day bound fails any comparison,
        as a missing key does in Chroma)."""
        clauses: list[str] = []
        params: list[int | str] = []
        if self.sources:
            keys = sorted(self.keys)
            clauses.append(f"source_key IN ({','.join('?' * len(keys))})")
            params.extend(keys)
        if self.since:
            clauses.append("published_to >= ?")
            params.append(first_day(self.since))
        if self.until:
            clauses.append("published_from <= ?")
            params.append(last_day(self.until))
        return " AND ".join(clauses) or "1", params

    def describe(self, lang: str = "en") -> str:
        """For people, in the question's language: ``published 2016-01-01 to 2016-06; source kompas.com``."""
        words = _WORDS["en" if lang == "en" else "id"]
        parts = []
        if self.since and self.until:
            parts.append(words["between"].format(self.since, self.until))
        elif self.since:
            parts.append(words["since"].format(self.since))
        elif self.until:
            parts.append(words["until"].format(self.until))
        if self.sources:
            parts.append(words["source"] + f" {words['or']} ".join(self.sources))
        return "; ".join(parts)

    @classmethod
    def from_json(cls, data: dict) -> DocumentFilter:
        """The filter an answer's ``filter`` field (``to_json``) describes."""
        return cls(data["since"], data["until"], tuple(data["source"]))

    def to_json(self, documents: int) -> dict:
        return {"since": self.since, "until": self.until, "source": list(self.sources), "documents": documents}


def _bound(value: str | None, name: str) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise InputError(f"'{name}' must be a date such as 2016-03-14")
    checked_text(value, name)
    iso = whole_date(value)
    if iso is None:
        raise InputError(f"'{name}' {value.strip()[:40]!r} is not a date (use YYYY-MM-DD, YYYY-MM or YYYY)")
    return iso
