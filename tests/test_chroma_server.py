"""Tanya against a real `chroma run` server on loopback instead of embedded Chroma."""

from __future__ import annotations

import json
from pathlib import Path

import chromadb

from tests.helpers import CORPUS, KIRBY_DOC, run_cli
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
