"""Date and publisher filters (index/filters.py): applied inside retrieval (Chroma's ``where`` and BM25's
restriction), the same through the Python API, the CLI and HTTP."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from index.documents import make_document
from index.errors import InputError
from index.filters import DocumentFilter, first_day, last_day
from tests.helpers import KIRBY_DOC, THOMAS_DOC, http, run_cli

FLOOD = "Berapa rumah yang terendam banjir?"


def test_filter_values_are_read_as_dates_and_bad_ones_refused() -> None:
    assert DocumentFilter.parse() is None
    assert DocumentFilter.parse(" ", "", []) is None
    f = DocumentFilter.parse("14 Maret 2016", "2016-09", ["Kompas.com", "kompas.com", " "])
    assert f == DocumentFilter("2016-03-14", "2016-09", ("Kompas.com", "kompas.com"))
    assert f.keys == {"kompas.com"}
    assert (first_day("2016"), last_day("2016"), last_day("2016-02"), last_day("2015-02")) == (
        20160101, 20161231, 20160229, 20150228)
    with pytest.raises(InputError, match="'since' 'kemarin' is not a date"):
        DocumentFilter.parse(since="kemarin")
    with pytest.raises(InputError, match="is after 'until'"):
        DocumentFilter.parse(since="2017-01-01", until="2016")
    with pytest.raises(InputError, match="'source' must be"):
        DocumentFilter.parse(source=[3])  # type: ignore[list-item]


def flood_documents() -> list:
    """Sixty near-identical reports by one paper (March 2016) that outrank, for the question, the one
    report of another paper (2017) and one undated report."""
    docs = [make_document(f"harian-a-{i:02d}", f"Banjir merendam {100 + i} rumah di Bekasi pada {1 + i % 28} Maret "
                          "2016. Warga mengungsi ke masjid terdekat.", f"Banjir Bekasi {i}",
                          f"2016-03-{1 + i % 28:02d}", "harian-a.id") for i in range(60)]
    docs.append(make_document("harian-b-01", "Hujan turun sejak pagi di Karawang dan sekitarnya. Sungai Citarum "
                              "meluap pada siang hari. Banjir merendam 120 rumah warga di Karawang. Petugas "
                              "membagikan makanan kepada para pengungsi di balai desa. Kepala desa meminta bantuan "
                              "perahu karet.", "Genangan Karawang", "2017-01-05", "Harian-B.id"))
    docs.append(make_document("tanpa-tanggal", "Hujan deras membuat 45 rumah di Bogor terendam.", "Hujan Bogor"))
    return docs


@pytest.fixture(scope="module")
def flood_tanya(tmp_path_factory: pytest.TempPathFactory, model_dir: Path):
    from rag.tanya import Tanya

    tanya = Tanya.open(tmp_path_factory.mktemp("flood-home"))
    tanya.add(flood_documents())
    yield tanya
    tanya.close()


def test_a_filtered_question_gets_its_candidates_from_the_allowed_documents_only(flood_tanya) -> None:
    from rag.retriever import collect_candidates

    unfiltered = collect_candidates(flood_tanya.index, FLOOD)
    assert "harian-b-01" not in {d for d, _ in unfiltered.keys}  # crowded out of both candidate lists

    answer = flood_tanya.ask(FLOOD, source="www.HARIAN-B.id")
    assert [c.doc_id for c in answer.citations] == ["harian-b-01"]
    assert answer.short_answer is not None and answer.short_answer.text == "120"
    assert answer.filter == {"since": None, "until": None, "source": ["www.HARIAN-B.id"], "documents": 1}
    assert [h.doc_id for h in flood_tanya.retrieve(FLOOD, k=5, since="2017")] == ["harian-b-01"]

    early = flood_tanya.retrieve(FLOOD, k=50, since="2016-03-01", until="2016-03-03")
    assert len(early) == 9  # days 1-3 of the sixty reports (i % 28 in 0..2), and nothing else
    assert all(h.doc_id.startswith("harian-a-") for h in early)
    # An undated document is left out by any date bound, kept without one.
    bogor = "Berapa rumah di Bogor terendam hujan deras?"
    assert flood_tanya.retrieve(bogor, k=1)[0].doc_id == "tanpa-tanggal"
    assert "tanpa-tanggal" not in {h.doc_id for h in flood_tanya.retrieve(bogor, k=100, until="2030")}
    assert flood_tanya.matching_documents(until="2030") == {"since": None, "until": "2030", "source": [],
                                                            "documents": 61}
    # BM25's side on its own: only the allowed documents' chunks score.
    hits = flood_tanya.index.bm25.search(["rumah"], 100, only={"harian-b-01", "tanpa-tanggal"})
    assert {d for d, _ in hits} == {"harian-b-01", "tanpa-tanggal"}

    nodes = flood_tanya.as_retriever(similarity_top_k=3, source="harian-a.id").retrieve(FLOOD)
    assert len(nodes) == 3 and all(n.node.metadata["doc_id"].startswith("harian-a-") for n in nodes)


def test_post_filtered_neighbours_and_chromas_filtered_search_find_the_same_chunks(flood_tanya, monkeypatch) -> None:
    """Under a broad filter the dense side keeps the allowed ones among unfiltered neighbours, falling back
    to Chroma's filtered search when too few are there (rag/retriever.py): the same k nearest either way."""
    from index.embedder import embed_query
    from index.filters import DocumentFilter
    from rag import retriever
    from rag.retriever import Scope, live_nearest

    index = flood_tanya.index
    calls: list[bool] = []  # whether each Chroma query carried the filter
    query_chunks = index.vectors.query_chunks

    def recorded(embedding, k, filters=None):
        calls.append(filters is not None)
        return query_chunks(embedding, k, filters)

    monkeypatch.setattr(index.vectors, "query_chunks", recorded)
    vec = embed_query(index.embedder, FLOOD)
    # The last looks broad (its share of the documents is an estimate, here a wrong one): the one report
    # it allows is not among the unfiltered neighbours.
    cases = [({"source": "harian-a.id"}, 5, None), ({"since": "2016-03-01", "until": "2016-03-03"}, 3, None),
             ({"since": "2016-03-01", "until": "2016-03-10"}, 8, None), ({"source": "harian-b.id"}, 5, None),
             ({"source": "harian-b.id"}, 5, 1.0)]
    paths = []
    for values, k, share in cases:
        scope = Scope.of(index, DocumentFilter.parse(**values))
        if share is not None:
            scope = Scope(scope.filter, scope.doc_ids, share)
        calls.clear()
        post_filtered = live_nearest(index, vec, k, scope)[0]
        paths.append(list(calls))
        monkeypatch.setattr(retriever, "MAX_POST_FILTERED", 0)  # Chroma's filtered search alone
        filtered = live_nearest(index, vec, k, scope)[0]
        monkeypatch.setattr(retriever, "MAX_POST_FILTERED", 1000)
        assert list(post_filtered) == list(filtered), values
        assert {d for d, _ in post_filtered} <= scope.doc_ids
        assert len(post_filtered) == min(k, len(scope.doc_ids))
    assert [False] in paths  # kept from the unfiltered neighbours alone
    assert [False, True] in paths  # too few there: the filtered search found the rest


def test_a_filter_that_allows_no_document_says_so_with_the_publishers_there_are(flood_tanya) -> None:
    answer = flood_tanya.ask(FLOOD, source="detik.com")
    assert answer.abstained and not answer.citations
    assert answer.answer.startswith("Tidak ada dokumen di korpus yang cocok dengan filter (penerbit detik.com).")
    assert "harian-a.id (60), Harian-B.id (1)" in answer.answer
    assert answer.filter == {"since": None, "until": None, "source": ["detik.com"], "documents": 0}
    english = flood_tanya.ask("How many houses were flooded?", since="2020-01-01")
    assert english.answer == "No document in the corpus matches the filter (published since 2020-01-01)."
    assert flood_tanya.retrieve(FLOOD, since="2020") == []


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory, seed_home: Path) -> Path:
    """A copy of the seed index for the CLI (this process holds the seed home's embedded Chroma)."""
    home = tmp_path_factory.mktemp("filters-cli") / "home"
    shutil.copytree(seed_home, home, ignore=shutil.ignore_patterns("index.lock", "chroma.lock"))
    return home


def test_the_same_filtered_answers_from_python_the_cli_and_http(seed_tanya, cli_home: Path, seed_server: str) -> None:
    """The seed articles' dates are read from their datelines: 2016-03-14 (Kirby) and 2016-09-20 (Thomas)."""
    cases = [("Siapa juru bicara Departemen Luar Negeri AS?", {"until": "2016-06"}, KIRBY_DOC),
             ("Siapa juru bicara AS Central Command?", {"since": "2016-06-01"}, THOMAS_DOC)]
    for question, filters, doc in cases:
        python = seed_tanya.ask(question, **filters).to_json()
        assert python["citations"] and {c["doc_id"] for c in python["citations"]} == {doc}
        assert python["filter"]["documents"] == 1
        flags = [arg for name, value in filters.items() for arg in (f"--{name}", value)]
        cli = run_cli("ask", question, "--json", *flags, home=cli_home)
        assert cli.returncode == 0, cli.stderr
        status, served = http("POST", f"{seed_server}/api/ask", {"question": question, **filters})
        assert status == 200
        assert json.loads(cli.stdout) == python == served

        status, retrieved = http("POST", f"{seed_server}/api/retrieve", {"query": question, "k": 5, **filters})
        assert status == 200 and {r["doc_id"] for r in retrieved["results"]} == {doc}
        assert retrieved["filter"] == python["filter"]
        cli = run_cli("retrieve", question, "--json", "-k", "5", *flags, home=cli_home)
        assert [json.loads(line)["doc_id"] for line in cli.stdout.splitlines()] == [
            r["doc_id"] for r in retrieved["results"]]
        assert "filter: published" in cli.stderr and "1 documents match" in cli.stderr


@pytest.mark.parametrize(("body", "status", "reason"), [
    ({"since": "kemarin"}, 400, "'since' 'kemarin' is not a date"),
    ({"since": "2017", "until": "2016"}, 400, "is after 'until'"),
    ({"source": 7}, 422, "source"),
    ({"source": [f"penerbit-{i}" for i in range(51)]}, 400, "the limit is 50"),
])
def test_bad_filter_values_are_a_4xx_with_a_reason(seed_server: str, body: dict, status: int, reason: str) -> None:
    for path, key in (("ask", "question"), ("retrieve", "query")):
        got, detail = http("POST", f"{seed_server}/api/{path}", {key: "Siapa?", **body})
        assert got == status and reason in detail["detail"]


def test_a_bad_filter_value_on_the_command_line_is_one_line_and_exit_1(cli_home: Path) -> None:
    for args in (("ask", "Siapa?", "--since", "2016-13"), ("retrieve", "Siapa?", "--until", "besok")):
        result = run_cli(*args, home=cli_home)
        assert result.returncode == 1 and "Traceback" not in result.stderr
        assert result.stderr.startswith("tanya: error: '") and "is not a date" in result.stderr
    result = run_cli("ask", "Siapa?", "--source", "detik.com", home=cli_home)
    assert result.returncode == 0 and "Tidak ada dokumen di korpus yang cocok" in result.stdout


def test_eval_under_a_filter_scores_questions_whose_documents_it_leaves_out_as_not_in_the_corpus(
        tmp_path: Path, cli_home: Path) -> None:
    gold = tmp_path / "gold.jsonl"
    rows = [{"id": "kirby", "question": "Siapa juru bicara Departemen Luar Negeri AS?", "lang": "id",
             "doc": KIRBY_DOC, "evidence": None, "answer": ["Kirby"], "answerable": True},
            {"id": "thomas", "question": "Siapa juru bicara AS Central Command?", "lang": "id", "doc": THOMAS_DOC,
             "evidence": None, "answer": ["Thomas"], "answerable": True}]
    gold.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    result = run_cli("eval", "--gold", str(gold), "--since", "2016-06", "--no-baseline", "--out",
                     str(tmp_path / "report"), "-q", home=cli_home)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "report" / "summary.json").read_text())
    figures = next(iter(summary.values()))["all"]
    assert figures["answerable"] == 1 and figures["unanswerable"] == 1
    assert "published since 2016-06" in (tmp_path / "report" / "report.md").read_text()
