"""Shared fixtures: the real model (provisioned once per run into a temporary folder), real Chroma,
and temporary data homes. Nothing here may reach the network."""

from __future__ import annotations

import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import index  # noqa: F401  (offline switches before anything heavy)
from tests.helpers import BIN, CORPUS, free_port


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from index.model import provision

    target = tmp_path_factory.mktemp("model") / "multilingual-e5-small"
    provision(target)
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
    log = (tmp_path / "chroma.log").open("w")
    proc = subprocess.Popen([str(BIN / "chroma"), "run", "--path", str(tmp_path / "chroma-server"),
                             "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=1)
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                pytest.fail(f"chroma run did not start: {(tmp_path / 'chroma.log').read_text()[-2000:]}")
            time.sleep(0.3)
    yield url
    proc.terminate()
    proc.wait(timeout=30)
    log.close()
