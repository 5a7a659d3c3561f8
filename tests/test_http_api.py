"""The HTTP API against a real `tanya serve` (uvicorn) on a free loopback port: every endpoint, the
error cases, and the token rule for write endpoints."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.helpers import KIRBY_DOC, SERVER_TIMEOUT, THOMAS_DOC, gradio_call, http, run_cli, running_server


@pytest.fixture(scope="module")
def server(seed_server: str) -> str:
    return seed_server


def assert_no_traceback(body: dict) -> None:
    assert "Traceback" not in str(body) and "detail" in body


def test_healthz_and_openapi(server: str) -> None:
    status, body = http("GET", f"{server}/healthz")
    assert status == 200 and body["status"] == "ok" and body["documents"] >= 2
    status, spec = http("GET", f"{server}/openapi.json")
    assert status == 200 and {"/api/ask", "/api/retrieve", "/api/documents", "/api/documents/{doc_id}"} <= set(
        spec["paths"])


def test_ask_returns_the_cli_contract_with_exact_offsets(server: str) -> None:
    status, answer = http("POST", f"{server}/api/ask", {"question": "Siapa juru bicara Central Command AS?"})
    assert status == 200
    assert set(answer) >= {"question", "answer", "abstained", "confidence", "citations"}
    assert not answer["abstained"] and "Thomas" in answer["answer"]
    for c in answer["citations"]:
        _, doc = http("GET", f"{server}/api/documents/{c['doc_id']}")
        assert doc["text"][c["start"] : c["end"]] == c["sentence"]
        assert {"start": c["start"], "end": c["end"]} in [{"start": s["start"], "end": s["end"]}
                                                           for s in doc["sentences"]]


def test_ask_follow_up_uses_history_and_k_limits_citations(server: str) -> None:
    status, answer = http("POST", f"{server}/api/ask", {"question": "Apa pangkatnya?",
                                                        "history": ["Siapa juru bicara Central Command AS?"]})
    assert status == 200 and "Kolonel" in " ".join(c["sentence"] for c in answer["citations"])
    status, answer = http("POST", f"{server}/api/ask", {"question": "Berapa orang tewas dalam serangan konvoi?",
                                                        "k": 1})
    assert status == 200 and len(answer["citations"]) <= 1


def test_ask_refuses_what_the_corpus_does_not_hold(server: str) -> None:
    status, answer = http("POST", f"{server}/api/ask", {"question": "Siapa pemenang Piala Dunia 2014 di Brasil?"})
    assert status == 200 and answer["abstained"] and answer["citations"] == []


@pytest.mark.parametrize(("body", "status"), [
    ({"question": ""}, 400),
    ({"question": "   "}, 400),
    ({"question": "x" * 2500}, 400),
    ({"question": "x" * 5000}, 400),  # over twice the limit too: the same 400 (it was a 422)
    ({"question": "\u200b\u200c\u2060\ufeff"}, 400),  # zero-width characters only: empty (was answered)
    ({"question": "\x00\x1b\u200b "}, 400),
    ({}, 422),
    ({"question": "Siapa?", "k": 0}, 422),
    ({"question": "Siapa?", "k": True}, 422),  # not a number of citations (was taken as 1)
    ({"question": "Siapa?", "k": "3"}, 422),
    ({"question": "Siapa?", "k": 2.5}, 422),  # 2.0 is a whole number (JSON Schema integer): accepted
    ({"question": "Siapa?", "history": "not a list"}, 422),
    ({"question": "\ud800"}, 400),  # "not valid Unicode" (was a 422: pydantic's length check)
    ({"question": "Siapa dia?", "history": ["\ud800"]}, 400),
])
def test_bad_questions_get_a_4xx_with_a_reason(server: str, body: dict, status: int) -> None:
    got, reply = http("POST", f"{server}/api/ask", body)
    assert got == status, reply
    assert_no_traceback(reply)


@pytest.mark.parametrize(("body", "reason"), [
    ({"question": "\u200b\u200b"}, "the question is empty"),
    ({"question": "x" * 4001}, "the question has 4,001 characters; the limit is 2,000"),
    ({"question": "Apa pangkatnya?", "history": ["Siapa?", "y" * 2500]}, "history item 2 has 2,500 characters"),
    ({"question": "Apa pangkatnya?", "history": ["\u200b"]}, "history item 1 is empty"),
])
def test_a_bad_question_or_history_item_is_named_in_the_reason(server: str, body: dict, reason: str) -> None:
    status, reply = http("POST", f"{server}/api/ask", body)
    assert status == 400 and reason in reply["detail"], reply


def test_retrieve_k_must_be_an_integer(server: str) -> None:
    for k in (True, "3", 1.5):
        status, reply = http("POST", f"{server}/api/retrieve", {"query": "Aleppo", "k": k})
        assert status == 422 and "k" in reply["detail"], (k, reply)


def test_malformed_json_is_a_422(server: str) -> None:
    status, reply = http("POST", f"{server}/api/ask", raw=b"{not json")
    assert status == 422
    assert_no_traceback(reply)


def test_retrieve_ranks_chunks_with_offsets(server: str) -> None:
    status, body = http("POST", f"{server}/api/retrieve", {"query": "gencatan senjata Aleppo", "k": 3})
    assert status == 200 and 1 <= len(body["results"]) <= 3
    assert [r["rank"] for r in body["results"]] == list(range(1, len(body["results"]) + 1))
    for r in body["results"]:
        _, doc = http("GET", f"{server}/api/documents/{r['doc_id']}")
        assert doc["text"][r["start"] : r["end"]] == r["text"] and r["title"] == doc["title"]
    assert http("POST", f"{server}/api/retrieve", {"query": "x", "k": 0})[0] == 422


def test_documents_list_and_unknown_id(server: str) -> None:
    status, body = http("GET", f"{server}/api/documents")
    assert status == 200 and {KIRBY_DOC, THOMAS_DOC} <= {d["doc_id"] for d in body["documents"]}
    status, reply = http("GET", f"{server}/api/documents/no-such-doc")
    assert status == 404 and "no-such-doc" in reply["detail"]
    assert http("DELETE", f"{server}/api/documents/no-such-doc")[0] == 404


def test_add_replace_and_delete_a_document(server: str) -> None:
    doc = {"id": "berita-banjir", "title": "Banjir di Semarang",
           "text": "Banjir besar melanda Kota Semarang pada hari Rabu. Wali Kota Hendrar Prihadi meminta warga "
                   "mengungsi ke Stadion Diponegoro."}
    status, report = http("POST", f"{server}/api/documents", {"documents": [doc]})
    assert status == 200 and report["added"] == ["berita-banjir"]
    _, answer = http("POST", f"{server}/api/ask", {"question": "Ke mana warga Semarang diminta mengungsi?"})
    assert "Stadion Diponegoro" in answer["answer"] and answer["citations"][0]["doc_id"] == "berita-banjir"

    doc["text"] = doc["text"].replace("Stadion Diponegoro", "Gedung Olahraga Jatidiri")
    status, report = http("POST", f"{server}/api/documents", {"documents": [doc]})
    assert status == 200 and report["updated"] == ["berita-banjir"]
    _, answer = http("POST", f"{server}/api/ask", {"question": "Ke mana warga Semarang diminta mengungsi?"})
    assert "Jatidiri" in answer["answer"] and "Diponegoro" not in answer["answer"]

    assert http("DELETE", f"{server}/api/documents/berita-banjir") == (200, {"deleted": "berita-banjir"})
    assert http("GET", f"{server}/api/documents/berita-banjir")[0] == 404


def test_bad_documents_are_rejected_and_nothing_is_lost(server: str) -> None:
    before = http("GET", f"{server}/api/documents")[1]["documents"]
    batch = {"documents": [{"id": "good-one", "text": "Teks yang baik."}, {"id": "empty", "text": "  "}]}
    status, reply = http("POST", f"{server}/api/documents", batch)
    assert status == 400 and "empty" in reply["detail"]
    for bad in ({"documents": []}, {"documents": [{"id": "../etc/passwd", "text": "x"}]},
                {"documents": [{"id": "bin", "text": "a\x00b"}]}, {"documents": [{"text": "no id"}]}):
        status, reply = http("POST", f"{server}/api/documents", bad)
        assert status in (400, 422), (bad, reply)
        assert_no_traceback(reply)
    assert http("GET", f"{server}/api/documents")[1]["documents"] == before


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory, seed_home: Path) -> Iterator[str]:
    """`TANYA_API_TOKEN=s3cret tanya serve` over a copy of the seed index."""
    home = tmp_path_factory.mktemp("token") / "home"
    shutil.copytree(seed_home, home, ignore=shutil.ignore_patterns("index.lock"))
    with running_server(home, home.parent / "serve.log", env={"TANYA_API_TOKEN": "s3cret"}) as url:
        yield url


def test_write_endpoints_need_the_token_when_one_is_set(token_server: str) -> None:
    url = token_server
    doc = {"documents": [{"id": "t1", "text": "Satu kalimat saja."}]}
    assert http("POST", f"{url}/api/documents", doc)[0] == 401
    assert http("POST", f"{url}/api/documents", doc, headers={"Authorization": "Bearer wrong"})[0] == 401
    assert http("POST", f"{url}/api/documents", doc, headers={"Authorization": "Bearer s3cret"})[0] == 200
    assert http("DELETE", f"{url}/api/documents/t1")[0] == 401
    assert http("GET", f"{url}/api/documents")[0] == 200  # reading needs no token
    assert http("POST", f"{url}/api/ask", {"question": "Siapa juru bicara Central Command AS?"})[0] == 200
    assert http("DELETE", f"{url}/api/documents/t1", headers={"Authorization": "Bearer s3cret"})[0] == 200


def raw_request(url: str, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> int:
    """A request whose header bytes are sent exactly as given (urllib insists on Latin-1 str)."""
    parts = urlsplit(url)
    assert parts.hostname and parts.port
    connection = HTTPConnection(parts.hostname, parts.port, timeout=60)
    connection.putrequest(method, path)
    for name, value in [*headers, (b"Content-Type", b"application/json"), (b"Content-Length", str(len(body)).encode())]:
        connection.putheader(name, value)
    connection.endheaders(body)
    response = connection.getresponse()
    reply = json.loads(response.read())
    assert_no_traceback(reply)
    connection.close()
    return response.status


@pytest.mark.parametrize("token", ["Bearer ü".encode(), "Bearer ü".encode("latin-1"), "Bearer s3creté".encode(),
                                   b"Bearer \xff\xfe", "Bearer 秘密".encode(), b"Bearer s3cret\x80",
                                   "Bearer ü".encode()[:8]])
def test_a_non_ascii_bearer_token_is_a_401(token_server: str, token: bytes) -> None:
    """It was a 500: secrets.compare_digest refuses str with non-ASCII characters. Tokens are compared as bytes."""
    body = json.dumps({"documents": [{"id": "t2", "text": "Satu kalimat saja."}]}).encode()
    assert raw_request(token_server, "POST", "/api/documents", [(b"Authorization", token)], body) == 401
    assert raw_request(token_server, "DELETE", f"/api/documents/{KIRBY_DOC}", [(b"Authorization", token)]) == 401
    assert http("GET", f"{token_server}/api/documents/{KIRBY_DOC}")[0] == 200


def test_the_web_pages_writes_need_the_token_too(token_server: str, tmp_path: Path) -> None:
    """The Documents tab's Delete and Add, and their public Gradio routes, deleted and added documents with
    no token while the API asked for one. Now they need it too (the page has a token field for it)."""
    import httpx
    from gradio_client import Client, handle_file

    url = token_server
    # The reproduction (a delete through Gradio's public route, now an error: the token is an input),
    # then with an empty, a wrong and a non-ASCII token.
    assert "event: error" in gradio_call(url, "delete_document", [KIRBY_DOC])
    for token in ("", "wrong", "s3cret-ü", "ü"):
        stream = gradio_call(url, "delete_document", [KIRBY_DOC, token])
        assert "needs the API token" in stream, stream
    assert http("GET", f"{url}/api/documents/{KIRBY_DOC}")[0] == 200

    new = tmp_path / "banjir-token.txt"
    new.write_text("Banjir melanda Kota Semarang pada hari Rabu.\n", encoding="utf-8")
    # uploads through Gradio's upload route, as a browser does
    client = Client(f"{url}/", verbose=False, httpx_kwargs={"timeout": SERVER_TIMEOUT})
    try:  # the upload route itself needs the token (ui/web.py UploadNeedsToken)
        with pytest.raises(httpx.HTTPStatusError, match="401"):
            client.predict([handle_file(str(new))], api_name="/add_files")
    finally:
        client.close()
    client = Client(f"{url}/", verbose=False, httpx_kwargs={"timeout": SERVER_TIMEOUT},
                    headers={"Authorization": "Bearer s3cret"})
    try:  # and Add reads the token from its own field
        status = client.predict([handle_file(str(new))], api_name="/add_files")[0]
        assert "needs the API token" in status and http("GET", f"{url}/api/documents/banjir-token")[0] == 404
        status = client.predict([handle_file(str(new))], "ü", api_name="/add_files")[0]
        assert "needs the API token" in status and http("GET", f"{url}/api/documents/banjir-token")[0] == 404
        status = client.predict([handle_file(str(new))], "s3cret", api_name="/add_files")[0]
        assert "1 added" in status and http("GET", f"{url}/api/documents/banjir-token")[0] == 200
        status = client.predict("banjir-token", "s3cret", api_name="/delete_document")[0]
        assert status.startswith("✓") and http("GET", f"{url}/api/documents/banjir-token")[0] == 404
    finally:
        client.close()


def test_binding_a_public_address_without_a_token_is_refused(tmp_path: Path, model_dir: Path) -> None:
    result = run_cli("serve", "--host", "0.0.0.0", "--port", "1", home=tmp_path / "home",
                     env={"TANYA_API_TOKEN": ""})
    assert result.returncode == 1 and "TANYA_API_TOKEN" in result.stderr and "Traceback" not in result.stderr


def test_a_request_body_that_stalls_is_answered_408_and_closed() -> None:
    """A client that sends half a body and then nothing held its connection for ever. The middleware of
    `tanya serve` (ui/api.py BodyReadTimeout) around a real uvicorn server, with a 1 s pause limit."""
    import asyncio
    import socket
    import threading
    import time
    import urllib.request
    from collections.abc import AsyncIterator

    import uvicorn
    from fastapi import FastAPI
    from fastapi.responses import StreamingResponse

    from tests.helpers import free_port
    from ui.api import BodyReadTimeout

    app = FastAPI()

    @app.post("/echo")
    def echo(body: dict) -> dict:
        return body

    @app.get("/slow-stream")
    async def slow_stream() -> StreamingResponse:  # longer than the limit: only bodies are timed
        async def parts() -> AsyncIterator[bytes]:
            for n in range(5):
                await asyncio.sleep(0.5)
                yield f"{n}".encode()

        return StreamingResponse(parts())

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(BodyReadTimeout(app, timeout=1.0), port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    try:
        for _ in range(100):
            if server.started:
                break
            time.sleep(0.1)
        assert http("POST", f"http://127.0.0.1:{port}/echo", {"a": 1}) == (200, {"a": 1})
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 100\r\n\r\n{\"a\": ")
            reply = b""
            while chunk := client.recv(4096):  # the server closes the connection after its answer
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 408") and b"stalled for 1 s" in reply, reply
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/slow-stream", timeout=10) as streamed:
            assert streamed.read() == b"01234"
    finally:
        server.should_exit = True
