"""Hostile input against the real thing (a real `tanya serve` over a copy of the seed index, the real model,
embedded Chroma, the real `tanya` executable): whatever arrives, the answer is a 4xx / a one-line error with
a reason, or a correct result; never a 5xx, never a traceback, and nothing already indexed is lost.

- schemathesis fuzzes every operation of our OpenAPI (the write endpoints included), and the web page's
  own public routes from Gradio's OpenAPI (on a server with a write token);
- hypothesis fuzzes questions through the HTTP API and the Python API;
- document ids and upload file names that try to escape (`../x`, `..`, NUL, newline, look-alikes);
- malformed files through `tanya index` (the cases tests/test_index.py and tests/test_cli.py do not cover).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from index.documents import MAX_DOCUMENT_CHARS
from index.errors import InputError
from rag.tanya import Tanya
from tests.helpers import CORPUS, SERVER_TIMEOUT, THOMAS_DOC, gradio_call, http, run_cli, running_server

# The seed articles exactly as `tanya index` reads them (bytes decoded, no newline translation).
SEED_TEXTS = {p.stem: p.read_bytes().decode("utf-8") for p in sorted(CORPUS.glob("*.txt"))}
FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck), database=None)


class Served:
    """A running `tanya serve` over a copy of the seed index, and what it served before any hostile input."""

    def __init__(self, url: str, home: Path) -> None:
        self.url, self.home = url, home
        self.ids_before_web_fuzz: set[str] = set()  # set by the web_schema fixture
        self.seed = {doc_id: http("GET", f"{url}/api/documents/{doc_id}")[1] for doc_id in SEED_TEXTS}

    def text(self, doc_id: str) -> str:
        status, doc = http("GET", f"{self.url}/api/documents/{quote(doc_id, safe='')}")
        assert status == 200, (doc_id, doc)
        return doc["text"]

    def ids(self) -> set[str]:
        return {d["doc_id"] for d in http("GET", f"{self.url}/api/documents")[1]["documents"]}


@contextlib.contextmanager
def serving_a_seed_copy(tmp_path_factory: pytest.TempPathFactory, seed_home: Path,
                        env: dict[str, str] | None = None) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("hostile") / "home"
    shutil.copytree(seed_home, home, ignore=shutil.ignore_patterns("index.lock"))
    env = {"GRADIO_TEMP_DIR": str(home.parent / "gradio-uploads"), **(env or {})}
    with running_server(home, home.parent / "serve.log", env=env) as url:
        server = Served(url, home)
        assert {doc_id: doc["text"] for doc_id, doc in server.seed.items()} == SEED_TEXTS
        yield server


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, seed_home: Path) -> Iterator[Served]:
    with serving_a_seed_copy(tmp_path_factory, seed_home) as server:
        yield server


def assert_reason(status: int, body: dict) -> None:
    """A client error that says why, in one line of our own (no traceback, no 5xx)."""
    assert 400 <= status < 500, (status, body)
    detail = body.get("detail")
    assert isinstance(detail, str) and detail.strip() and "Traceback" not in detail, body


def assert_seed_intact(server: Served) -> None:
    for doc_id, before in server.seed.items():
        assert http("GET", f"{server.url}/api/documents/{doc_id}") == (200, before)


# --- 1. schemathesis over our OpenAPI -------------------------------------------------------------------

OPERATIONS = [("GET", "/healthz"), ("POST", "/api/ask"), ("POST", "/api/retrieve"), ("GET", "/api/documents"),
              ("GET", "/api/documents/{doc_id}"), ("POST", "/api/documents"), ("DELETE", "/api/documents/{doc_id}")]
WITH_BODY = {("POST", "/api/ask"), ("POST", "/api/retrieve"), ("POST", "/api/documents")}
# Schema-invalid data only exists for operations with a body (any string is a valid {doc_id}).
SCHEMATHESIS_CASES = [(method, path, mode) for method, path in OPERATIONS for mode in GenerationMode
                      if mode is GenerationMode.POSITIVE or (method, path) in WITH_BODY]


@pytest.fixture(scope="module")
def api_schema(served: Served) -> schemathesis.BaseSchema:
    # Schema-valid data may still be refused with a reason: an empty or whitespace-only question, a document
    # id outside [\w.-], NUL bytes in a text. The schema cannot say all of that, so a 400 counts as accepted
    # (a 422 for schema-valid data still fails the check).
    config = schemathesis.Config.from_dict(
        {"checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "404", "409"]}}})
    return schemathesis.openapi.from_url(f"{served.url}/openapi.json", config=config)


def test_the_fuzzed_operations_are_all_the_api_has(served: Served) -> None:
    spec = http("GET", f"{served.url}/openapi.json")[1]
    assert {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops} == set(OPERATIONS)


@pytest.mark.parametrize(("method", "path", "mode"), SCHEMATHESIS_CASES,
                         ids=[f"{m} {p} {mode.value}" for m, p, mode in SCHEMATHESIS_CASES])
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
        api_schema: schemathesis.BaseSchema, method: str, path: str, mode: GenerationMode) -> None:
    """Every check schemathesis runs by default: no 5xx, documented status codes, responses matching their
    declared schema (our `{"detail": str}` errors included), schema-invalid data rejected."""
    # (schemathesis.pytest.from_fixture(), which a schema served by a fixture needs, fails on pytest 9.2: it sets
    # Function._nodeid, which pytest no longer has. Its documented @given + as_strategy() route does the same.)
    @given(case=api_schema[path][method].as_strategy(generation_mode=mode))
    @settings(FUZZ, max_examples=150 if (method, path) in WITH_BODY else 40)
    def check(case: schemathesis.Case) -> None:
        case.call_and_validate()

    check()


def test_seed_documents_survive_the_schemathesis_run(served: Served) -> None:
    """Runs after the fuzzing above (pytest keeps file order): the seed articles are still served, unchanged."""
    assert_seed_intact(served)
    status, answer = http("POST", f"{served.url}/api/ask", {"question": "Siapa juru bicara Central Command AS?"})
    assert status == 200 and answer["citations"] and answer["citations"][0]["doc_id"] == THOMAS_DOC


# --- 2. fuzzed questions ------------------------------------------------------------------------------------

HOSTILE_BITS = ["<script>alert(1)</script>", '<img src=x onerror="alert(1)">', "**tebal** [x](javascript:alert(1))",
                "```\nkode\n```", "\x00", "\u202e", "\u200b", "\ufeff", "\r\n", "\t", "' OR 1=1 --", "{{7*7}}",
                "${jndi:ldap://x}", "%s%n", "../../etc/passwd", "\\u0000", "Siapa juru bicara Central Command AS?",
                "Who is the spokesman?", "Кто представитель?", "发言人是谁", "من هو المتحدث", "ผู้ใด", "🙂🇮🇩",
                "e\u0301\u0301\u0301", "\ud800", "\udfff", "Kolonel", "Aleppo", "2016"]
ANY_CHAR = st.characters(exclude_categories=())  # all of Unicode: controls, NUL and lone surrogates included
WHITESPACE = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2028\u2029\u3000"
QUESTIONS = st.one_of(
    st.text(ANY_CHAR, max_size=80),
    st.lists(st.one_of(st.sampled_from(HOSTILE_BITS), st.text(ANY_CHAR, max_size=6)), max_size=8).map("".join),
    st.text(st.sampled_from(WHITESPACE), max_size=12),
)


def check_http_answer(server: Served, status: int, body: dict) -> None:
    if status != 200:
        assert_reason(status, body)
        return
    assert set(body) >= {"question", "answer", "abstained", "citations"}
    for c in body["citations"]:
        assert server.text(c["doc_id"])[c["start"] : c["end"]] == c["sentence"]


@given(question=QUESTIONS, history=st.lists(QUESTIONS, max_size=3), k=st.integers(1, 10))
@settings(FUZZ, max_examples=80)
def test_http_ask_survives_any_question(served: Served, question: str, history: list[str], k: int) -> None:
    """JSON carries everything here: NUL as \\u0000, a lone surrogate as a "\\ud800" escape."""
    status, body = http("POST", f"{served.url}/api/ask", {"question": question, "history": history, "k": k})
    check_http_answer(served, status, body)


@given(query=QUESTIONS, k=st.integers(1, 50))
@settings(FUZZ, max_examples=50)
def test_http_retrieve_survives_any_query(served: Served, query: str, k: int) -> None:
    status, body = http("POST", f"{served.url}/api/retrieve", {"query": query, "k": k})
    if status != 200:
        assert_reason(status, body)
        return
    assert len(body["results"]) <= k
    for r in body["results"]:
        assert served.text(r["doc_id"])[r["start"] : r["end"]] == r["text"]


@given(question=QUESTIONS, history=st.lists(QUESTIONS, max_size=3))
@settings(FUZZ, max_examples=80)
def test_python_ask_survives_any_question(seed_tanya: Tanya, question: str, history: list[str]) -> None:
    try:
        answer = seed_tanya.ask(question, history=history)
    except InputError as exc:  # QuestionError is one
        assert str(exc).strip() and "\n" not in str(exc)
        return
    for c in answer.citations:
        doc = seed_tanya.document(c.doc_id)
        assert doc is not None and doc.text[c.start : c.end] == c.sentence


MEGABYTE = 1_000_000


@pytest.mark.parametrize("body", [
    {"question": "x" * MEGABYTE},
    {"question": "\ud800" * MEGABYTE},
    {"question": "Apa pangkatnya?", "history": ["y" * MEGABYTE]},
    {"question": "Apa pangkatnya?", "history": ["Siapa?"] * 10_000},
    {"question": "Siapa?", "k": 10**30},
    {"question": ["Siapa?"]},
    {"question": {"$ne": ""}},
    {"question": None},
], ids=["1MB", "1MB-of-surrogates", "1MB-history", "10k-history", "huge-k", "list", "object",
        "null"])
def test_http_ask_refuses_huge_and_mistyped_questions_with_a_reason(served: Served, body: dict) -> None:
    assert_reason(*http("POST", f"{served.url}/api/ask", body))


def test_a_question_padded_with_a_megabyte_of_spaces_is_the_question_itself(served: Served) -> None:
    """The limit counts the question once stripped (ui/api.py): padding changes nothing."""
    status, padded = http("POST", f"{served.url}/api/ask", {"question": "Siapa juru bicara?" + " " * MEGABYTE})
    _, plain = http("POST", f"{served.url}/api/ask", {"question": "Siapa juru bicara?"})
    assert status == 200 and padded["citations"] == plain["citations"]


def test_http_bodies_over_the_limit_are_refused_even_when_chunked(served: Served) -> None:
    """A body over 20 MB is a 413 whether it declares its length or streams in chunks (no Content-Length)."""
    import http.client
    from urllib.parse import urlsplit

    body = json.dumps({"question": "x" * 21_000_000}).encode()
    parts = urlsplit(served.url)
    assert parts.hostname and parts.port
    for chunked in (False, True):
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=120)
        payload = (body[i : i + 2**20] for i in range(0, len(body), 2**20)) if chunked else body
        connection.request("POST", "/api/ask", body=payload, headers={"Content-Type": "application/json"},
                           encode_chunked=chunked)
        response = connection.getresponse()
        assert_reason(response.status, json.loads(response.read()))
        assert response.status == 413
        connection.close()


def test_python_ask_refuses_a_megabyte_question(seed_tanya: Tanya) -> None:
    for question, history in (("x" * MEGABYTE, []), ("Apa pangkatnya?", ["y" * MEGABYTE])):
        with pytest.raises(InputError, match="limit is 2,000"):
            seed_tanya.ask(question, history=history)


# --- 3. document ids and upload file names -----------------------------------------------------------------

BAD_IDS = ["../x", "/etc/passwd", "a/b", "..", ".", "...", "", "x" * 201, "a\x00b", "berita\n", "\nberita",
           "berita\r\n", "a\\b", "C:\\x", "~root", "a b", "%2e%2e%2fx", "\u2215etc\u2215passwd", "\uff0e\uff0e\uff0fx",
           "\u2024\u2024", "..\u2215x", "a\u200bb", "\ud800", "<script>"]


def tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_bad_document_ids_are_refused_and_nothing_is_written_anywhere(served: Served) -> None:
    around = served.home.parent
    before, passwd = tree(around), os.stat("/etc/passwd")
    for bad in BAD_IDS:
        status, body = http("POST", f"{served.url}/api/documents",
                            {"documents": [{"id": bad, "text": "Teks berita yang sah. Kalimat kedua."}]})
        assert_reason(status, body)
        assert bad not in served.ids()
    assert tree(around) == before  # not even inside the data home: validation comes before any write
    assert os.stat("/etc/passwd").st_mtime_ns == passwd.st_mtime_ns
    assert not (around / "x").exists() and not (around.parent / "x").exists()
    assert_seed_intact(served)


@pytest.mark.parametrize("path_id", ["..", "%2E%2E", "..%2F..%2Fx", "%2Fetc%2Fpasswd", "a%00b", "a%0Ab",
                                     "%EF%BC%8E%EF%BC%8E", "%ED%A0%80", "x" * 5000])
def test_odd_ids_in_the_url_are_404s_and_delete_nothing(served: Served, path_id: str) -> None:
    # `..` straight in the path is collapsed by no one here (urllib sends it as is): it must not reach a document.
    for method in ("GET", "DELETE"):
        status, body = http(method, f"{served.url}/api/documents/{path_id}")
        assert_reason(status, body)
    assert_seed_intact(served)


def test_ids_with_dots_inside_are_documents_like_any_other(served: Served) -> None:
    for doc_id in ("a..b", ".tersembunyi", "..x", "berita.txt"):
        doc = {"id": doc_id, "text": f"Dokumen {doc_id} memuat satu kalimat."}
        assert http("POST", f"{served.url}/api/documents", {"documents": [doc]})[0] == 200
        assert served.text(doc_id) == doc["text"]
        assert http("DELETE", f"{served.url}/api/documents/{quote(doc_id)}") == (200, {"deleted": doc_id})
    assert_seed_intact(served)


@given(text=st.one_of(st.text(ANY_CHAR, min_size=1, max_size=300),
                      st.lists(st.sampled_from(HOSTILE_BITS), min_size=1, max_size=12).map(" ".join)))
@settings(FUZZ, max_examples=30)
def test_any_document_text_is_kept_exactly_or_refused(served: Served, text: str) -> None:
    status, body = http("POST", f"{served.url}/api/documents", {"documents": [{"id": "fuzz-doc", "text": text}]})
    if status != 200:
        assert_reason(status, body)
        return
    status, doc = http("GET", f"{served.url}/api/documents/fuzz-doc")
    assert status == 200 and doc["text"] == text
    assert all(0 <= s["start"] <= s["end"] <= len(text) for s in doc["sentences"])


def test_the_fuzzed_document_is_deleted_and_the_seed_is_intact(served: Served) -> None:
    if "fuzz-doc" in served.ids():
        assert http("DELETE", f"{served.url}/api/documents/fuzz-doc")[0] == 200
    assert_seed_intact(served)


@pytest.fixture(scope="module")
def web(served: Served) -> Iterator[Any]:
    """Gradio's own client: it uploads through Gradio's upload route (as a browser does) and then runs the
    Documents tab's "Add to the index" handler (ui/web.py `add_files`) on the server's copies."""
    from gradio_client import Client

    client = Client(f"{served.url}/", verbose=False, httpx_kwargs={"timeout": SERVER_TIMEOUT})
    yield client
    client.close()  # its heartbeat stream would hold up the server's shutdown


TEXT = "Banjir melanda Kota Semarang pada hari Rabu. Warga mengungsi ke Stadion Diponegoro.\n"


REFUSED_BY_GRADIO = "refused by Gradio"  # its upload component checks the file types before our handler runs
WEB_NAMES = [
    ("berita banjir.txt", TEXT, "berita-banjir"),  # what an id cannot hold becomes '-'
    ("berita-ñandú-日本.txt", TEXT, "berita-ñandú-日本"),
    ("ＡＢＣ.md", TEXT, "ＡＢＣ"),
    (".tersembunyi.txt", TEXT, ".tersembunyi"),
    ("a..b.txt", TEXT, "a..b"),
    ("..txt", TEXT, None),  # its id would be "."
    ("...txt", TEXT, None),  # its id would be ".."
    ("x\u2215y.txt", TEXT, "x-y"),  # a slash look-alike
    ("tanpa-ekstensi", TEXT, REFUSED_BY_GRADIO),
    ("BERITA.JSONL", json.dumps({"id": "dari-jsonl", "text": TEXT}) + "\n", "dari-jsonl"),
    ("kosong.jsonl", "\n\n", None),
    ("n" * 240 + ".txt", TEXT, "n" * 196),  # Gradio keeps upload names to 200 bytes
    ("berita\nbaru.txt", TEXT, "berita-0Abaru"),  # the client sends the newline as %0A; '%' becomes '-'
]


@pytest.mark.parametrize(("name", "content", "expected"), WEB_NAMES, ids=[repr(n[0])[:40] for n in WEB_NAMES])
def test_web_upload_of_odd_file_names(served: Served, web: Any, tmp_path: Path, name: str, content: str,
                                      expected: str | None) -> None:
    """Refused with a reason (the Documents tab's status line starts with ⚠), or added under the id the name
    gives; either way nothing else in the index changes."""
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    ids_before = served.ids()
    if expected == REFUSED_BY_GRADIO:
        with pytest.raises(AppError, match="Invalid file type"):
            web.predict([handle_file(str(path))], api_name="/add_files")
        assert served.ids() == ids_before
        return
    status = web.predict([handle_file(str(path))], api_name="/add_files")[0]
    assert "Traceback" not in status
    if expected is None:
        assert status.startswith("⚠") and len(status) > 3, status
        assert served.ids() == ids_before
    else:
        assert status.startswith("✓") and "1 added" in status, status
        assert served.ids() == ids_before | {expected}
        assert served.text(expected) == TEXT
        assert http("DELETE", f"{served.url}/api/documents/{quote(expected)}")[0] == 200
    assert_seed_intact(served)


def test_web_upload_names_cannot_escape_the_upload_folder(served: Served) -> None:
    import httpx

    uploads = served.home.parent / "gradio-uploads"
    for name in ("../../../escaped-upload.txt", "/tmp/escaped-upload.txt", "..\\..\\escaped-upload.txt"):
        response = httpx.post(f"{served.url}/gradio_api/upload", timeout=SERVER_TIMEOUT,
                              files=[("files", (name, TEXT.encode(), "text/plain"))])
        if response.status_code == 200:
            for stored in response.json():
                assert Path(stored).resolve().is_relative_to(uploads.resolve()), stored
        else:
            assert 400 <= response.status_code < 500
    assert not list(served.home.parent.glob("escaped-upload*")) and not Path("/tmp/escaped-upload.txt").exists()
    assert not (served.home / "escaped-upload.txt").exists()


def file_data(path: Path | str) -> dict:
    return {"path": str(path), "meta": {"_type": "gradio.FileData"}}


def test_a_server_path_is_never_accepted_as_an_upload(served: Served, tmp_path: Path) -> None:
    """A client named a file on the server (`{"path": "/...", "meta": {"_type": "gradio.FileData"}}`) and
    the Documents tab indexed it ("1 added"; its text then readable at /api/documents/...), and Gradio
    copied it into its upload folder. Gradio's own check (only files its upload route stored) now runs."""
    secret = tmp_path / "rahasia-server.txt"  # in the system temp folder, which Gradio otherwise trusts
    secret.write_text("Kata sandi basis data adalah hunter2.\n", encoding="utf-8")
    in_cwd = Path.cwd() / "README.md"  # the current folder, which Gradio otherwise trusts too
    uploads = served.home.parent / "gradio-uploads"
    before = tree(uploads) if uploads.exists() else set()
    ids_before = served.ids()
    for path in (secret, in_cwd, Path("/etc/hostname"), uploads / ".." / "home" / "documents.sqlite3"):
        stream = gradio_call(served.url, "add_files", [[file_data(path)], ""])  # "": the token field, unused here
        assert "event: error" in stream and "added" not in stream, stream
        # The chat's own input (a message that is a file) was a way to have a server file copied and served.
        message = {"role": "user", "content": [{"type": "file", "file": file_data(path)}]}
        stream = gradio_call(served.url, "respond", ["Siapa?", [message]])
        assert "event: error" in stream and "hunter2" not in stream, stream
    assert served.ids() == ids_before
    assert not any(name in "".join(tree(uploads) - before if uploads.exists() else set())
                   for name in ("rahasia-server", "README", "hostname", "documents.sqlite3"))
    assert_seed_intact(served)


def test_a_real_upload_through_the_upload_route_is_still_added(served: Served) -> None:
    import httpx

    response = httpx.post(f"{served.url}/gradio_api/upload", timeout=SERVER_TIMEOUT,
                          files=[("files", ("unggah-sah.txt", TEXT.encode(),
                                                                              "text/plain"))])
    assert response.status_code == 200
    stream = gradio_call(served.url, "add_files", [[file_data(response.json()[0])], ""])
    assert "1 added" in stream, stream
    assert served.text("unggah-sah") == TEXT
    assert http("DELETE", f"{served.url}/api/documents/unggah-sah")[0] == 200


def test_an_upload_with_a_form_field_that_is_not_a_file_is_a_400(served: Served) -> None:
    """Found by the schemathesis run below: Gradio's parser raised (a 500) on it when an upload_id was given."""
    import httpx

    response = httpx.post(f"{served.url}/gradio_api/upload", timeout=SERVER_TIMEOUT, params={"upload_id": "x1"},
                          data={"note": "1"},
                          files=[("files", ("a.txt", TEXT.encode(), "text/plain"))])
    assert_reason(response.status_code, response.json())


# --- schemathesis over the web page's own routes (Gradio's OpenAPI) ----------------------------------------

REFUSED_WITH_A_REASON = {"description": "refused with a reason (ui/web.py GradioClientErrors, or FastAPI's 422)",
                         "content": {"application/json": {"schema": {
                             "type": "object", "required": ["detail"],
                             "properties": {"detail": {"type": ["string", "array"]}}}}}}


def gradio_schema(url: str) -> dict:
    """Gradio's /gradio_api/openapi.json made valid (Gradio 6 writes it as OpenAPI 3.0 but with JSON
    Schema 2020 parts: `const`, `type: null`; `type: filepath` inside lists; `enum: []` for a choice that
    is filled at run time; each SSE event typed as a string), with the 4xx answers it leaves out."""

    def fix(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "filepath":
                node["type"] = "string"
            if node.get("enum") == []:
                del node["enum"]
            for value in node.values():
                fix(value)
        elif isinstance(node, list):
            for value in node:
                fix(value)

    schema = http("GET", f"{url}/gradio_api/openapi.json")[1]
    fix(schema)
    schema["openapi"] = "3.1.0"
    for ops in schema["paths"].values():
        for op in ops.values():
            for status, response in op["responses"].items():  # Gradio's own 4xx are text, ours JSON
                if status.startswith("4"):
                    response.setdefault("content", {}).update(REFUSED_WITH_A_REASON["content"])
            op["responses"]["4XX"] = REFUSED_WITH_A_REASON
            stream = op["responses"]["200"].get("content", {}).get("text/event-stream")
            if stream:
                stream["schema"] = {"type": "object", "properties": {"event": {"type": "string"},
                                                                     "data": {"type": "string"}}}
    return schema


@pytest.fixture(scope="module")
def web_served(tmp_path_factory: pytest.TempPathFactory, seed_home: Path) -> Iterator[Served]:
    """A server with a write token, as one reachable by others runs: the fuzzer does not know the token, so
    the page's Add and Delete must refuse it (Gradio's schema even offers a real document id as the example
    for delete_document)."""
    with serving_a_seed_copy(tmp_path_factory, seed_home, {"TANYA_API_TOKEN": "web-fuzz-token"}) as server:
        yield server


@pytest.fixture(scope="module")
def web_schema(web_served: Served) -> schemathesis.BaseSchema:
    # Gradio's schema marks no argument required and says nothing of valid choices, so a schema-valid call
    # may still be refused with a reason (400, or 404 for an unknown event). Its call protocol enqueues any
    # JSON object (200 and an event id) and gives the verdict on the event's stream, which `check` below
    # reads, so schemathesis's "schema-violating request accepted" does not apply; nor does it to an empty
    # multipart upload, answered with an empty list of files.
    # The token header opens Gradio's upload route (ui/web.py UploadNeedsToken) so its parsing is fuzzed too;
    # the page's Add and Delete read the token from their own arguments, which the fuzzer does not know.
    config = schemathesis.Config.from_dict({
        "base-url": web_served.url, "headers": {"Authorization": "Bearer web-fuzz-token"},
        "checks": {"positive_data_acceptance": {"expected-statuses": ["2xx", "400", "404"]},
                   "negative_data_rejection": {"enabled": False}}})
    web_served.ids_before_web_fuzz = web_served.ids()
    return schemathesis.openapi.from_dict(gradio_schema(web_served.url), config=config)


# Gradio names each event after its function: the chat (respond: the Ask button and Enter, one event;
# ask_example: an example question; open_source), the Documents tab (add_files, delete_document; listed,
# listed_1: the Show button and the sort order; lambda opens one, lambda_1 is the table's initial value).
WEB_EVENTS = ["respond", "ask_example", "open_source", "add_files", "delete_document", "listed",
              "listed_1", "lambda", "lambda_1"]
WEB_OPERATIONS = [("POST", "/gradio_api/upload")] + [
    op for name in WEB_EVENTS for op in (("POST", f"/gradio_api/call/v2/{name}"),
                                         ("GET", f"/gradio_api/call/{name}/{{event_id}}"))]
WEB_CASES = [(method, path, mode) for method, path in WEB_OPERATIONS for mode in GenerationMode
             if mode is GenerationMode.POSITIVE or method == "POST"]


def test_the_fuzzed_web_routes_are_all_the_page_has(web_served: Served) -> None:
    spec = gradio_schema(web_served.url)
    assert {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops} == set(WEB_OPERATIONS)


@pytest.mark.parametrize(("method", "path", "mode"), WEB_CASES,
                         ids=[f"{m} {p} {mode.value}" for m, p, mode in WEB_CASES])
def test_schemathesis_over_the_web_pages_routes_finds_no_server_error(
        web_served: Served, web_schema: schemathesis.BaseSchema, method: str, path: str,
        mode: GenerationMode) -> None:
    """Gradio answered a call missing its arguments with a 500 (TypeError), an unknown endpoint with a 500
    (KeyError), and an unknown event id with "200" and then an exception in the server (its stream raised a
    404 after starting). Now: a 4xx with a reason, or for a stream already started, Gradio's `event: error`
    and a clean end. Each enqueued call's stream is read to its end: a result or an error event."""
    import httpx

    @given(case=web_schema[path][method].as_strategy(generation_mode=mode))
    @settings(FUZZ, max_examples=25)
    def check(case: schemathesis.Case) -> None:
        response = case.call_and_validate()
        if path.startswith("/gradio_api/call/v2/") and response.status_code == 200:
            name = path.rsplit("/", 1)[1]
            stream = httpx.get(f"{web_served.url}/gradio_api/call/{name}/{response.json()['event_id']}",
                               timeout=SERVER_TIMEOUT).text
            assert "event: complete" in stream or "event: error" in stream, stream

    check()


def test_unknown_web_endpoints_and_events_are_4xx_with_a_reason(web_served: Served) -> None:
    import httpx

    for path, body in [("/gradio_api/call/v2/no_such_event", {}), ("/gradio_api/call/no_such_event", {"data": []}),
                       ("/gradio_api/call/v2/open_source", {})]:
        response = httpx.post(f"{web_served.url}{path}", timeout=SERVER_TIMEOUT, json=body)
        assert_reason(response.status_code, response.json())
    stream = httpx.get(f"{web_served.url}/gradio_api/call/respond/no-such-event", timeout=30)
    assert stream.status_code == 200 and stream.text.startswith("event: error"), stream.text


def test_the_web_routes_fuzzing_wrote_nothing_and_logged_no_unexpected_error(web_served: Served) -> None:
    """Runs after the fuzzing above: nothing added or deleted through the page's routes, no traceback."""
    assert web_served.ids() == web_served.ids_before_web_fuzz
    assert_no_unexpected_error(web_served)


# --- big documents ---------------------------------------------------------------------------------------------

def test_chroma_takes_a_write_of_more_vectors_than_its_batch_limit(tmp_path: Path) -> None:
    """A document of 9,187 chunks failed after minutes of embedding (a 500, or a traceback): Chroma refuses
    more than max_batch_size (5,461) vectors in one add. Real embedded Chroma, vectors that need no model."""
    import chromadb
    import numpy as np

    from index.vectors import VectorCollections, vector_node

    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
    vectors = VectorCollections(client)
    n = client.get_max_batch_size() + 700
    rng = np.random.default_rng(0)
    nodes = [vector_node("besar", i, "v1", f"potongan {i}", rng.standard_normal(384).astype(np.float32), start=i,
                         end=i + 1) for i in range(n)]
    vectors.add(nodes)
    assert vectors.chunk_collection.count() == n
    vectors.add(nodes[:10] + nodes[-10:])  # a retry after a kill: existing ids are skipped by Chroma itself
    assert vectors.chunk_collection.count() == n
    assert vectors.remove_leftovers(["besar"], {}) == n and vectors.chunk_collection.count() == 0
    client.close()  # type: ignore[attr-defined]


TOO_MANY_SENTENCES = "Ya. " * 100_001  # 400,004 characters: under the character limit


def test_a_document_with_too_many_sentences_is_refused_up_front(served: Served) -> None:
    """Refused in seconds with a reason, before anything is embedded (it would take hours)."""
    import time

    start = time.monotonic()
    status, body = http("POST", f"{served.url}/api/documents",
                        {"documents": [{"id": "pendek", "text": "Satu kalimat."},
                                       {"id": "raksasa", "text": TOO_MANY_SENTENCES}]})
    assert_reason(status, body)
    assert status == 400 and "100,001 sentences; the limit is 100,000" in body["detail"], body
    assert time.monotonic() - start < 30
    assert "pendek" not in served.ids() and "raksasa" not in served.ids()
    assert_seed_intact(served)


# --- 4. malformed files through `tanya index` ---------------------------------------------------------------
# Already covered elsewhere, so not repeated: a broken JSONL line and a missing path (tests/test_cli.py); an empty,
# binary (NUL), Latin-1 or PDF file, an object without 'id', a lone surrogate (tests/test_index.py, Python API).

def _symlink_loop(folder: Path) -> Path:
    (folder / "loop").mkdir()
    (folder / "loop" / "self").symlink_to(folder / "loop")  # a folder containing itself
    (folder / "loop" / "a.txt").symlink_to(folder / "loop" / "b.txt")  # two files pointing at each other
    (folder / "loop" / "b.txt").symlink_to(folder / "loop" / "a.txt")
    return folder / "loop"


def _huge(folder: Path) -> Path:
    path = folder / "raksasa.txt"
    line = "Kalimat yang diulang-ulang sampai berkas ini melewati batas panjang dokumen.\n"
    path.write_text(line * (MAX_DOCUMENT_CHARS // len(line) + 1), encoding="utf-8")
    return path


def _empty_folder(folder: Path) -> Path:
    (folder / "kosong").mkdir()
    (folder / "kosong" / "catatan.pdf").write_bytes(b"%PDF-1.4")  # nothing indexable inside
    return folder / "kosong"


# (name, the file's bytes or a function making the input in a folder, what the error says)
MALFORMED: list[tuple[str, bytes | Callable[[Path], Path], str]] = [
    ("array.jsonl", b'[{"id": "a", "text": "Teks."}]\n', "array.jsonl:1: each line needs an object"),
    ("number.jsonl", b"42\n", "number.jsonl:1: each line needs an object"),
    ("invalid-utf8.jsonl", b'{"id": "u", "text": "caf\xe9"}\n', "not a JSON object in UTF-8"),
    ("duplicate-ids.jsonl", b'{"id": "d", "text": "Satu."}\n{"id": "d", "text": "Dua."}\n', "document id 'd'"),
    ("missing-text.jsonl", b'{"id": "m", "title": "Tanpa teks"}\n', "'id' and 'text'"),
    ("null-id.jsonl", b'{"id": null, "text": "Teks."}\n', "'id' must be a string"),
    ("blank.jsonl", b"\n \n", "no documents in this file"),
    ("utf16.txt", "Berita dalam UTF-16.".encode("utf-16"), "not UTF-8 text"),
    ("program.txt", Path(os.path.realpath("/bin/sh")).read_bytes(), "not UTF-8 text"),  # a real executable
    ("huge.txt", _huge, "the limit is 5,000,000"),
    ("empty-folder", _empty_folder, "no .txt, .md or .html files in this folder"),
    ("symlink-loop", _symlink_loop, "no .txt, .md or .html files in this folder"),
    ("many-sentences.txt", TOO_MANY_SENTENCES.encode(), "100,001 sentences; the limit is 100,000"),
]


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory, seed_home: Path) -> tuple[Path, str]:
    """A copy of the seed index, and its `tanya docs --json` before any malformed input."""
    home = tmp_path_factory.mktemp("hostile-cli") / "home"
    shutil.copytree(seed_home, home, ignore=shutil.ignore_patterns("index.lock"))
    docs = run_cli("docs", "--json", home=home)
    assert docs.returncode == 0, docs.stderr
    return home, docs.stdout


@pytest.mark.parametrize(("name", "content", "message"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_tanya_index_refuses_malformed_input_in_one_line(cli_home: tuple[Path, str], tmp_path: Path, name: str,
                                                         content: bytes | Callable[[Path], Path], message: str) -> None:
    home, _ = cli_home
    good = tmp_path / "baik.txt"  # indexed together with the bad input: all or nothing
    good.write_text(TEXT, encoding="utf-8")
    if callable(content):
        bad = content(tmp_path)
    else:
        bad = tmp_path / name
        bad.write_bytes(content)
    result = run_cli("index", str(good), str(bad), home=home)
    assert result.returncode != 0, result.stdout
    assert "Traceback" not in result.stderr and result.stderr.startswith("tanya: error:"), result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr, result.stderr


def test_documents_indexed_before_the_malformed_input_are_unchanged(cli_home: tuple[Path, str]) -> None:
    home, docs_before = cli_home
    docs = run_cli("docs", "--json", home=home)
    assert docs.returncode == 0 and docs.stdout == docs_before  # "baik" was never added either
    for doc_id, text in SEED_TEXTS.items():
        shown = run_cli("show", doc_id, home=home)
        assert shown.returncode == 0 and shown.stdout.rstrip("\n") == text.rstrip("\n")


# --- the second round (issue 27): what an adversarial probe of the filters, pages, LLM and uploads found ------

SURROGATE_REQUESTS = [  # each was a 500 (a lone surrogate reached SQLite, a hash or the reply)
    ("/api/ask", {"question": "Siapa juru bicara?", "source": "\ud800"}),
    ("/api/retrieve", {"query": "juru bicara", "source": ["kompas.com", "\udfff"]}),
    ("/api/ask", {"question": "Siapa juru bicara?", "since": "2016\ud800"}),
    ("/api/documents", {"documents": [{"id": "pengganti", "text": TEXT, "source": "\ud800"}]}),
    ("/api/documents", {"documents": [{"id": "pengganti", "text": TEXT, "url": "http://x/\udc00"}]}),
    ("/api/documents", {"documents": [{"id": "pengganti", "html": "<p>\ud800</p>"}]}),
]


@pytest.mark.parametrize(("path", "body"), SURROGATE_REQUESTS, ids=[f"{p} {sorted(b)}" for p, b in SURROGATE_REQUESTS])
def test_a_lone_surrogate_in_any_field_is_a_400(served: Served, path: str, body: dict) -> None:
    status, answer = http("POST", f"{served.url}{path}", body)
    assert_reason(status, answer)  # pydantic refuses one in a length-checked string first: a 422 that says so
    assert "lone surrogate" in answer["detail"] or "unicode string" in answer["detail"], answer
    assert "pengganti" not in served.ids()


@pytest.mark.parametrize(("body", "reason"), [
    ({"source": "www."}, "names no publisher"),  # matched every document without a publisher
    ({"since": "' OR 1=1 -- 2016-01-01"}, "is not a date"),  # read as 2016-01-01
    ({"until": "sebelum 2016-03-14 ya"}, "is not a date"),
])
def test_filter_values_must_be_what_they_say(served: Served, body: dict, reason: str) -> None:
    for path, question in (("/api/ask", {"question": "Siapa juru bicara?"}), ("/api/retrieve", {"query": "juru"})):
        status, answer = http("POST", f"{served.url}{path}", {**question, **body})
        assert status == 400 and reason in answer["detail"], (status, answer)
    status, _ = http("POST", f"{served.url}/api/retrieve", {"query": "juru", "since": "14 Maret 2016"})
    assert status == 200  # a whole date in a form news archives use is still a date


def test_a_publisher_name_has_a_length_limit(served: Served) -> None:
    """A 5 MB source was accepted, and every answer citing the document was then 15 MB."""
    status, answer = http("POST", f"{served.url}/api/documents",
                          {"documents": [{"id": "sumber-panjang", "text": TEXT, "source": "K" * 5_000_000}]})
    assert status == 400 and "publisher's name is at most 200" in answer["detail"], answer
    assert "sumber-panjang" not in served.ids()
    assert_seed_intact(served)


PAGE_NAV_ONLY = ("<html><head><meta charset='utf-8'><title>Kabar</title></head><body><nav>"
                 + " | ".join(f'<a href="/k{i}">Kategori {i}</a>' for i in range(40)) + "</nav>"
                 "<div class='cookie'><p>Situs ini memakai cookie. Dengan melanjutkan, Anda setuju.</p></div>"
                 "<div class='related'><h3>Berita Terkait</h3><ul>"
                 + "".join(f'<li><a href="/b{i}">Banjir rendam ribuan rumah di kota {i}</a></li>' for i in range(12))
                 + "</ul></div></body></html>")
ARTICLE = ("<p>Banjir melanda Kota Semarang pada hari Rabu setelah hujan deras sejak malam. Warga mengungsi ke "
           "Stadion Diponegoro karena air terus naik hingga sore.</p>")


def page_declaring(charset: str) -> str:
    return (f"<html><head><meta charset='{charset}'><title>Banjir</title></head>"
            f"<body><article>{ARTICLE}</article></body></html>")


@pytest.mark.parametrize("charset", ["base64", "hex", "rot13", "zlib", "uu", "quopri", "punycode", "undefined",
                                     "utf-16", "cp037", "utf-7"])
def test_a_page_declaring_a_charset_that_is_not_a_web_encoding_is_read_as_its_bytes(tmp_path: Path,
                                                                                     charset: str) -> None:
    """The non-text codecs were a LookupError traceback; utf-16 or EBCDIC declared on ASCII bytes gave a
    wrong "no article text". Browsers ignore such a declaration (utf-16 means utf-8): so does Tanya."""
    from index.html_pages import read_html_file

    path = tmp_path / "banjir.html"
    path.write_bytes(page_declaring(charset).encode("ascii"))
    assert "Stadion Diponegoro" in read_html_file(path).text


def test_pages_of_links_and_oversized_pages_are_refused_before_anything_is_written(served: Served, tmp_path: Path,
                                                                                    cli_home: tuple[Path, str]) -> None:
    """A page of navigation, a cookie banner and related links was indexed ("Kategori 0 | Kategori 1 | ...");
    a 15 MB page took 39 s and 540 MB to be refused (the limit was checked after extraction)."""
    from index.html_pages import MAX_PAGE_CHARS

    huge = "<html><body><article>" + ARTICLE * (MAX_PAGE_CHARS // len(ARTICLE) + 1) + "</article></body></html>"
    for doc_id, page, reason in (("tautan", PAGE_NAV_ONLY, "of its letters in links"),
                                 ("raksasa", huge, f"the limit for a saved page is {MAX_PAGE_CHARS:,}")):
        status, answer = http("POST", f"{served.url}/api/documents", {"documents": [{"id": doc_id, "html": page}]})
        assert status == 400 and reason in answer["detail"], (status, answer)
        path = tmp_path / f"{doc_id}.html"
        path.write_text(page, encoding="utf-8")
        result = run_cli("index", str(path), home=cli_home[0])
        assert result.returncode == 1 and result.stderr.startswith("tanya: error:"), result.stderr
        assert reason in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert not {"tautan", "raksasa"} & served.ids()
    assert_seed_intact(served)


def test_a_jsonl_row_with_a_lone_surrogate_is_one_line_of_error(cli_home: tuple[Path, str], tmp_path: Path) -> None:
    bad = tmp_path / "surrogat.jsonl"
    bad.write_text('{"id": "s", "text": "Teks berita.", "source": "\\ud800"}\n', encoding="utf-8")
    result = run_cli("index", str(bad), home=cli_home[0])
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "surrogat.jsonl:1: 'source' is not valid Unicode" in result.stderr, result.stderr


def test_bidirectional_overrides_are_escaped_in_the_terminal(tmp_path: Path, seed_home: Path) -> None:
    """U+202E in a title reversed the rest of the line of `tanya docs`."""
    home = tmp_path / "home"
    shutil.copytree(seed_home, home, ignore=shutil.ignore_patterns("index.lock"))
    doc = tmp_path / "terbalik.jsonl"
    doc.write_text(json.dumps({"id": "terbalik", "title": "Judul \u202egnalab\u202c biasa",
                               "text": "Isi \u2067berita\u2069 ini. " + TEXT}) + "\n", encoding="utf-8")
    assert run_cli("index", str(doc), home=home).returncode == 0
    listed = run_cli("docs", home=home).stdout
    shown = run_cli("show", "terbalik", home=home).stdout
    assert "Judul \\u202egnalab\\u202c biasa" in listed and "\u202e" not in listed, listed
    assert "Isi \\u2067berita\\u2069 ini." in shown and "\u2067" not in shown, shown


def test_gradio_uploads_need_the_token_before_anything_is_stored(web_served: Served) -> None:
    """Anyone could fill the disk while a token was set: /gradio_api/upload took 20 MB a request, no token."""
    import httpx

    uploads = web_served.home.parent / "gradio-uploads"
    before = tree(uploads) if uploads.exists() else set()
    files = [("files", ("isian.txt", b"x" * 1_000_000, "text/plain"))]
    for headers in ({}, {"Authorization": "Bearer salah"}, {"Cookie": "tanya_token=salah"}):
        response = httpx.post(f"{web_served.url}/gradio_api/upload", files=files, headers=headers,
                              timeout=SERVER_TIMEOUT)
        assert response.status_code == 401 and "token" in response.json()["detail"], response.text
    assert (tree(uploads) if uploads.exists() else set()) == before
    for headers in ({"Authorization": "Bearer web-fuzz-token"}, {"Cookie": "tanya_token=web-fuzz-token"}):
        response = httpx.post(f"{web_served.url}/gradio_api/upload", files=files, headers=headers,
                              timeout=SERVER_TIMEOUT)
        assert response.status_code == 200, response.text


# --- last: the server's own account ---------------------------------------------------------------------------

def test_the_server_logged_no_unexpected_error(served: Served) -> None:
    assert_no_unexpected_error(served)


def assert_no_unexpected_error(server: Served) -> None:
    """Every hostile request was answered without an unexpected error: a 500 logs "unexpected error" and
    its traceback. The only tracebacks allowed are Gradio's own log of what it refused before any code of
    ours ran: the messages it shows the user (`gradio.exceptions.Error`, e.g. a refused file type), a server
    path named by a client (InvalidPathError), and an event's input that its component could not read
    (raised in Gradio's `preprocess_data`: a chat history that is not a list of messages, say)."""
    assert_seed_intact(server)
    log = (server.home.parent / "serve.log").read_text(errors="replace")
    assert "unexpected error" not in log, log[-3000:]
    for block in log.split("Traceback (most recent call last):")[1:]:
        lines = block.splitlines()
        raised = next(line for line in lines if line and not line.startswith((" ", "\t")))
        frames = [line for line in lines if line.startswith("  File ")]
        ours = [f for f in frames if any(f'/{package}/' in f for package in ("index", "rag", "ui", "eval"))
                and "site-packages" not in f]
        refused_input = any("in preprocess_data" in f for f in frames)
        assert not ours and (refused_input or raised.startswith(
            ("gradio.exceptions.Error: ", "gradio.exceptions.InvalidPathError: "))), block[-3000:]
