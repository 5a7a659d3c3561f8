"""Shared fixtures: the real model (provisioned once per run into a temporary folder), real Chroma,
and temporary data homes. Nothing here may reach the network."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import index  # noqa: F401  (offline switches before anything heavy)
from tests.helpers import CORPUS, free_port, running_server, start_chroma, stop


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from index.model import provision
    from index.onnx_embedder import export_int8
    from rag.reader_model import compose

    target = tmp_path_factory.mktemp("model") / "multilingual-e5-small"
    provision(target)  # then the int8 embedder and the shipped reader, as `tanya provision` does
    export_int8(target)
    compose(target)
    os.environ["TANYA_MODEL_DIR"] = str(target)
    return target


@pytest.fixture(scope="session")
def seed_home(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    """A data home holding an index of corpus/ (read-only for tests)."""
    from rag.tanya import Tanya

    home = tmp_path_factory.mktemp("seed-home")
    tanya = Tanya.open(home)
    tanya.add_paths([CORPUS])
    tanya.close()
    return home


@pytest.fixture(scope="session")
def seed_tanya(seed_home: Path):
    from rag.tanya import Tanya

    tanya = Tanya.open(seed_home)
    yield tanya
    tanya.close()


@pytest.fixture
def home(tmp_path: Path, model_dir: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[str]:
    """A real `chroma run` server on a free loopback port, stopped after the test."""
    port = free_port()
    proc = start_chroma(tmp_path / "chroma-server", port, tmp_path / "chroma.log")
    yield f"http://127.0.0.1:{port}"
    stop(proc)


@pytest.fixture(scope="module")
def seed_server(tmp_path_factory: pytest.TempPathFactory, seed_home: Path) -> Iterator[str]:
    """A real `tanya serve` over a copy of the seed index (tests may add and delete documents)."""
    home = tmp_path_factory.mktemp("served") / "home"
    shutil.copytree(seed_home, home, ignore=shutil.ignore_patterns("index.lock"))
    with running_server(home, home.parent / "serve.log") as url:
        yield url
