"""The HTTP API against a real `tanya serve` (uvicorn) on a free loopback port: every endpoint, the
error cases, and the token rule for write endpoints."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.helpers import KIRBY_DOC, THOMAS_DOC, http, run_cli, running_server


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
    ({"question": "x" * 5000}, 422),
    ({}, 422),
    ({"question": "Siapa?", "k": 0}, 422),
    ({"question": "Siapa?", "history": "not a list"}, 422),
    ({"question": "\ud800"}, 422),
    ({"question": "Siapa dia?", "history": ["\ud800"]}, 422),
])
def test_bad_questions_get_a_4xx_with_a_reason(server: str, body: dict, status: int) -> None:
    got, reply = http("POST", f"{server}/api/ask", body)
    assert got == status, reply
    assert_no_traceback(reply)


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


def test_write_endpoints_need_the_token_when_one_is_set(tmp_path: Path, seed_home: Path) -> None:
    home = tmp_path / "home"
    shutil.copytree(seed_home, home, ignore=shutil.ignore_patterns("index.lock"))
    with running_server(home, tmp_path / "serve.log", env={"TANYA_API_TOKEN": "s3cret"}) as url:
        doc = {"documents": [{"id": "t1", "text": "Satu kalimat saja."}]}
        assert http("POST", f"{url}/api/documents", doc)[0] == 401
        assert http("POST", f"{url}/api/documents", doc, headers={"Authorization": "Bearer wrong"})[0] == 401
        assert http("POST", f"{url}/api/documents", doc, headers={"Authorization": "Bearer s3cret"})[0] == 200
        assert http("DELETE", f"{url}/api/documents/t1")[0] == 401
        assert http("GET", f"{url}/api/documents")[0] == 200  # reading needs no token
        assert http("POST", f"{url}/api/ask", {"question": "Siapa juru bicara Central Command AS?"})[0] == 200


def test_binding_a_public_address_without_a_token_is_refused(tmp_path: Path, model_dir: Path) -> None:
    result = run_cli("serve", "--host", "0.0.0.0", "--port", "1", home=tmp_path / "home",
                     env={"TANYA_API_TOKEN": ""})
    assert result.returncode == 1 and "TANYA_API_TOKEN" in result.stderr and "Traceback" not in result.stderr
