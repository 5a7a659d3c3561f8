"""Shared fixtures: the real model (provisioned once per machine into a cache folder, reused while its
files' hashes hold: hashed again whenever a file's size or times change), real Chroma, and temporary data
homes. Nothing here may reach the network."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import index  # noqa: F401  (offline switches before anything heavy)
from tests.helpers import CORPUS, free_port, running_server, start_chroma, stop

# One provisioned model per machine for every test run (TANYA_TEST_MODEL_CACHE to move it): provisioning,
# the int8 export and the reader's composition take 2-4 minutes. tests/test_model.py provisions from scratch.
MODEL_CACHE = Path(os.environ.get("TANYA_TEST_MODEL_CACHE") or Path.home() / ".cache" / "tanya" / "test-model")
MANIFEST = "tests-manifest.json"  # each file's size, sha256 and times, written once the folder is complete


def file_hashes(folder: Path, known: dict[str, list] | None = None) -> dict[str, list]:
    """Each file's [size, sha256, mtime_ns, ctime_ns]. A file whose size and times are those ``known`` keeps its
    known hash: hashing the folder's 750 MB costs seconds in every pytest worker, and any write moves the
    mtime (a copy that keeps mtimes, cp -p or rsync, still gets a new ctime, so it is hashed again)."""
    from index.model import sha256_of

    hashes = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        name, stat = str(path.relative_to(folder)), path.stat()
        facts = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]
        seen = (known or {}).get(name)
        unchanged = seen is not None and len(seen) == 4 and [seen[0], *seen[2:]] == facts
        hashes[name] = [facts[0], seen[1] if seen and unchanged else sha256_of(path), *facts[1:]]
    return hashes


def read_manifest(manifest: Path) -> dict[str, list]:
    try:
        return json.loads(manifest.read_text()) if manifest.is_file() else {}
    except ValueError:  # cut short: the folder is provisioned again
        return {}


def write_manifest(manifest: Path, hashes: dict[str, list]) -> None:
    partial = manifest.with_suffix(".partial")
    partial.write_text(json.dumps(hashes, indent=1))
    os.replace(partial, manifest)


def cached_model(target: Path) -> Path:
    """``target`` provisioned as `tanya provision` does (weights, int8 embedder, composed reader), reused when
    its manifest still matches every file it lists (files added later, such as an LLM, are not listed) and
    its graphs are today's recipes."""
    from index.model import provision
    from index.onnx_embedder import ONNX_INT8_RECORD, export_int8, is_current_export, onnx_path
    from rag.reader.model import compose, is_composed

    target.parent.mkdir(parents=True, exist_ok=True)
    with open(str(target) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs on one machine provision it once
        manifest = target / MANIFEST
        listed = read_manifest(manifest)
        found = file_hashes(target, listed) if listed else {}
        intact = bool(listed) and all(found.get(name, [None, None])[:2] == value[:2] for name, value in listed.items())
        if intact and is_current_export(onnx_path(target), target / ONNX_INT8_RECORD) and is_composed(target):
            checked = {name: found[name] for name in listed}
            if checked != listed:  # an older manifest without times, or a file copied: note what was hashed
                write_manifest(manifest, checked)
            return target
        if not intact:  # changed or half-written: provision it afresh (a graph of an older recipe is redone)
            if target.exists():
                shutil.rmtree(target)
            provision(target)
        export_int8(target)
        compose(target)
        write_manifest(manifest, file_hashes(target))
    return target


@pytest.fixture(scope="session")
def model_dir() -> Path:
    target = cached_model(MODEL_CACHE / "multilingual-e5-small")
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


# `make check` (the inner loop) runs `pytest -m "not slow"`: everything but what starts a browser, an LLM
# server, a `chroma run` server or a `tanya serve`, emulates a CPU, kills processes, or reads FacQA-scale data.
# `make test` runs them all.
SLOW_MODULES = {"test_web", "test_generated", "test_reliability", "test_cpu_independence", "test_chroma_server",
                "test_hostile_input", "test_http_api", "test_quality", "test_eval"}
SLOW_FIXTURES = {"seed_server", "chroma_server", "token_server", "llm_url"}


BESIDE_THE_SUITE = "test_cpu_independence.py::test_the_embedder_and_reader_agree_on_an_avx2_only_cpu"


_started_probes: list[Any] = []  # EmulatedProbe, stopped in pytest_sessionfinish


@pytest.fixture(scope="session", autouse=True)
def emulated_probe(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The emulated-CPU probe (tests/test_cpu_independence.py): started with the first test when its test is
    selected along with others, so its minutes of one core overlap the rest of the suite. Under pytest-xdist
    every worker gets here; they share one probe in their common temporary folder."""
    if not any(item.nodeid.endswith(BESIDE_THE_SUITE) for item in request.session.items):
        yield None
        return
    from tests.test_cpu_independence import EmulatedProbe

    shared = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        shared = shared.parent  # the run's folder, above each worker's own
    probe = EmulatedProbe(request.getfixturevalue("model_dir"), shared / "emulated-cpu")
    if len(request.session.items) > 1:
        probe.start()
    _started_probes.append(probe)
    yield probe


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Here, not in the fixture's teardown: that runs inside the last test's time limit, and a worker whose
    tests ended first may wait minutes for the probe that a test in another worker reads."""
    interrupted = exitstatus == pytest.ExitCode.INTERRUPTED or bool(session.shouldfail or session.shouldstop)
    for probe in _started_probes:
        probe.stop(wait=0 if interrupted else 1200)


# The longest files first (by their seconds in a warm two-worker run, 2026-12-08). pytest-xdist hands out whole
# files in collection order (with --no-loadscope-reorder, as the Makefile runs it; by default, most tests
# first): test_reliability.py (9 tests; ~330 s then, ~250 s since it asks in-process) went out last and kept
# one worker busy 1.5-2.3 min after the other had finished.
LONGEST_FIRST = ["test_reliability", "test_hostile_input", "test_generated", "test_cli", "test_web", "test_quality",
                 "test_http_api", "test_reader", "test_eval", "test_chroma_server", "test_filters", "test_index"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def module_name(item: pytest.Item) -> str:
        return item.nodeid.split("::", 1)[0].rsplit("/", 1)[-1].removesuffix(".py")

    def rank(item: pytest.Item) -> tuple[int, bool]:
        # The probe's test goes last, so that the probe has had the whole suite's time to finish (in one
        # process; under pytest-xdist its file goes to a worker whole, which waits for the probe meanwhile).
        name = module_name(item)
        return (LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST),
                item.nodeid.endswith(BESIDE_THE_SUITE))

    items.sort(key=rank)  # stable: each file's tests keep their order
    for item in items:
        module = getattr(item, "module", None)
        code = getattr(getattr(item, "function", None), "__code__", None)
        if (module is not None and module.__name__.rsplit(".", 1)[-1] in SLOW_MODULES) \
                or set(getattr(item, "fixturenames", ())) & SLOW_FIXTURES \
                or (code is not None and "running_server" in code.co_names):
            item.add_marker(pytest.mark.slow)
