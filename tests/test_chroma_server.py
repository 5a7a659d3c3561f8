"""Tanya against a real `chroma run` server on loopback instead of embedded Chroma."""

from __future__ import annotations

import json
from pathlib import Path

import chromadb

from tests.helpers import CORPUS, KIRBY_DOC, http, run_cli, running_server, served_over_stoppable_chroma
from tests.test_index import assert_consistent


def test_index_and_ask_through_a_chroma_server(chroma_server: str, home: Path) -> None:
    from rag.tanya import Tanya

    tanya = Tanya.open(home, chroma_url=chroma_server)
    tanya.add_paths([CORPUS])
    assert not (home / "chroma").exists()  # vectors live in the server, not in the data home
    port = int(chroma_server.rsplit(":", 1)[1])
    server_side = chromadb.HttpClient(host="127.0.0.1", port=port)
    assert server_side.get_collection("tanya_chunks").count() == tanya.index.store.counts()[2]
    assert_consistent(tanya.index)
    answer = tanya.ask("Siapa juru bicara Departemen Luar Negeri AS?")
    assert not answer.abstained and answer.citations[0].doc_id == KIRBY_DOC


def test_cli_uses_the_server_from_the_environment(chroma_server: str, tmp_path: Path, model_dir: Path) -> None:
    home = tmp_path / "home"
    env = {"TANYA_CHROMA_URL": chroma_server}
    assert run_cli("index", str(CORPUS), home=home, env=env).returncode == 0
    result = run_cli("ask", "--json", "Siapa juru bicara Departemen Luar Negeri AS?", home=home, env=env)
    assert result.returncode == 0, result.stderr
    assert "Kirby" in json.loads(result.stdout)["answer"]


def test_serve_answers_503_while_the_chroma_server_is_down_and_recovers(tmp_path: Path, model_dir: Path) -> None:
    with served_over_stoppable_chroma(tmp_path) as (server, chroma):
        question = {"question": "Siapa juru bicara Central Command AS?"}
        assert http("POST", f"{server}/api/ask", question)[0] == 200
        chroma.stop()
        status, body = http("POST", f"{server}/api/ask", question)
        assert status == 503 and "Chroma server" in body["detail"], body
        assert http("POST", f"{server}/api/retrieve", {"query": "Thomas"})[0] == 503
        assert http("GET", f"{server}/api/documents")[0] == 200  # the document store still answers
        chroma.start()  # back: answers again without a restart
        status, body = http("POST", f"{server}/api/ask", question)
        assert status == 200 and "Thomas" in body["answer"], body


LEWOTOBI = ("Gunung Lewotobi Laki-laki di Kabupaten Flores Timur kembali meletus pada Senin pagi. "
            "Kepala Pos Pengamatan Gunung Api Lewotobi, Herman Yosef Mboro, mengatakan tinggi kolom abu "
            "mencapai 2.000 meter di atas puncak. Warga diminta tidak beraktivitas dalam radius tujuh kilometer.")


def test_several_serve_processes_share_one_chroma_server_and_one_home(chroma_server: str, tmp_path: Path,
                                                                      model_dir: Path) -> None:
    """The documented deployment (README, "Several processes"): vectors in `chroma run`, the data home on
    the machine's disk, several `tanya serve` processes. A write through one is answered by the other at
    its next question, and a delete through the other disappears from the first, without restarts."""
    home = tmp_path / "home"
    env = {"TANYA_CHROMA_URL": chroma_server}
    assert run_cli("index", str(CORPUS), home=home, env=env).returncode == 0
    question = {"question": "Siapa Kepala Pos Pengamatan Gunung Api Lewotobi?"}
    with running_server(home, tmp_path / "a.log", env=env) as first, \
            running_server(home, tmp_path / "b.log", env=env) as second:
        status, body = http("POST", f"{second}/api/ask", question)
        assert status == 200 and body["abstained"], body  # not in the corpus yet
        status, body = http("POST", f"{first}/api/documents",
                            {"documents": [{"id": "lewotobi", "text": LEWOTOBI, "title": "Lewotobi meletus"}]})
        assert status == 200, body
        status, body = http("POST", f"{second}/api/ask", question)
        assert status == 200 and not body["abstained"], body
        assert body["citations"][0]["doc_id"] == "lewotobi" and "Herman Yosef Mboro" in body["answer"], body
        assert http("DELETE", f"{second}/api/documents/lewotobi")[0] == 200
        assert "lewotobi" not in {d["doc_id"] for d in http("GET", f"{first}/api/documents")[1]["documents"]}
        status, body = http("POST", f"{first}/api/ask", question)
        assert status == 200 and all(c["doc_id"] != "lewotobi" for c in body["citations"]), body
