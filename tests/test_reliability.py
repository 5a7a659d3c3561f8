"""Crash safety and concurrent writers, with real processes: `tanya index` is SIGKILLed at each step of
the write protocol (index/index.py) and at random moments; afterwards the index must be consistent
(`tanya check`), and running `tanya index` again must finish the work with nothing duplicated or lost
and exactly the answers of a run that was never interrupted."""

from __future__ import annotations

import json
import random
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from index.documents import read_paths
from index.index import EMBED_BATCH_DOCS
from tests.helpers import CORPUS, KIRBY_DOC, REPO, cli_process, http, run_cli, running_server, running_server_process

CRASH_DOCS = 5 * EMBED_BATCH_DOCS  # five batches: a kill can fall before, inside and after several
SEED_QUESTIONS = ["Siapa juru bicara Departemen Luar Negeri AS?", "Who is Ben Thomas?",
                  "Berapa harga tiket pesawat ke Mars?"]
KILLED = -signal.SIGKILL


def write_jsonl(path: Path, docs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpora(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    """Version 1 of a corpus (the two seed articles and FacQA passages), version 2 with the first half
    of it rewritten, and questions about it."""
    from eval import facqa

    passages, items = facqa.load()
    seeds = [{"id": d.doc_id, "text": d.text, "title": d.title} for d in read_paths([CORPUS])]
    v1 = seeds + [{"id": d.doc_id, "text": d.text, "title": d.title} for d in passages[: CRASH_DOCS - len(seeds)]]
    v2 = [{**d, "text": d["text"] + " Berita ini diperbarui oleh redaksi pada hari Senin."} if i < len(v1) // 2
          else d for i, d in enumerate(v1)]
    held = {d["id"] for d in v1}
    questions = SEED_QUESTIONS + [it.question for it in items["train"] if it.doc_id in held][::20]
    folder = tmp_path_factory.mktemp("crash-corpus")
    return write_jsonl(folder / "v1.jsonl", v1), write_jsonl(folder / "v2.jsonl", v2), questions


def check(home: Path, chroma_url: str | None = None) -> dict[str, int]:
    """What `tanya check` finds, which must be consistent: its counts (and how many leftovers a killed writer
    left). Run in this process, as the CLI runs it: a CLI start per check would cost seconds, a few dozen
    times; ``cli_check`` shows once that the command reports the same."""
    from index.home import DataHome
    from index.index import Index

    found = Index(DataHome.resolve(home, chroma_url), finish_interrupted_writes=False)
    try:
        report = found.check()
    finally:
        found.close()
    assert not report.problems, report.summary()
    return {"documents": report.documents, "sentences": report.sentences, "chunks": report.chunks,
            "chunk vectors": report.vectors - report.leftovers, "leftovers": report.leftovers}


def cli_check(home: Path) -> dict[str, int]:
    """`tanya check`'s exit status and counts."""
    result = run_cli("check", home=home)
    assert result.returncode == 0 and result.stdout.startswith("consistent"), result.stdout + result.stderr
    held, _, interrupted = result.stdout.partition(";")
    counts = {name: int(n) for n, name in re.findall(r"(\d+) (documents|sentences|chunks|chunk vectors)", held)}
    found = re.search(r"(\d+) leftover vectors", interrupted)
    counts["leftovers"] = int(found.group(1)) if found else 0
    return counts


def answers(home: Path, questions: list[str]) -> list[dict]:
    """The answers, as `tanya ask --json` gives them (``Answer.to_json``), asked in this process through the
    Python API: a CLI start costs ~4 s of loading, ten times here; the kills and the writers stay processes."""
    from rag.tanya import Tanya

    tanya = Tanya.open(home)
    try:
        return [tanya.ask(question).to_json() for question in questions]
    finally:
        tanya.close()


def index_ok(home: Path, corpus: Path) -> subprocess.CompletedProcess[str]:
    result = run_cli("index", "-q", str(corpus), home=home)
    assert result.returncode == 0, result.stderr
    return result


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory: pytest.TempPathFactory, corpora: tuple[Path, Path, list[str]],
                  model_dir: Path) -> dict:
    """Homes and answers of runs that were never interrupted: v1 indexed, then v2 over it."""
    v1, v2, questions = corpora
    root = tmp_path_factory.mktemp("uninterrupted")
    index_ok(root / "v1", v1)
    shutil.copytree(root / "v1", root / "v2", ignore=shutil.ignore_patterns("index.lock"))
    index_ok(root / "v2", v2)
    listed = run_cli("docs", "--json", home=root / "v1").stdout.splitlines()
    v1_chars = {d["doc_id"]: d["chars"] for d in map(json.loads, listed)}
    return {"v1": root / "v1", "v2": root / "v2", "v1_chars": v1_chars,
            "v1_counts": cli_check(root / "v1"), "v2_counts": check(root / "v2"),
            "v1_answers": answers(root / "v1", questions), "v2_answers": answers(root / "v2", questions)}


def assert_finished_like(home: Path, version: str, uninterrupted: dict, questions: list[str]) -> None:
    """Nothing duplicated, lost or left over, and the same answers as the uninterrupted run."""
    assert check(home) == uninterrupted[f"{version}_counts"]
    assert answers(home, questions) == uninterrupted[f"{version}_answers"]


# Each run is killed at one step of the write protocol and the next run starts from what it left, so one
# chain covers every step (whole batches commit, so the runs' batches are the uninterrupted run's).
V1_KILLS = [  # (where, documents committed when it struck)
    ("embedded:2", 1 * EMBED_BATCH_DOCS),  # a batch embedded, nothing of it written
    ("vectors_added:2", 2 * EMBED_BATCH_DOCS),  # its vectors in Chroma, the store not yet committed
    ("committed:1", 3 * EMBED_BATCH_DOCS),  # committed, old versions' vectors not yet removed
    ("leftovers_removed:1", 4 * EMBED_BATCH_DOCS),  # all done but the pending marks
    ("bm25_snapshot_written:1", CRASH_DOCS),  # every batch done, killed while saving BM25's snapshot
]


def test_index_killed_at_each_step_is_consistent_and_the_next_run_goes_on(
        corpora: tuple[Path, Path, list[str]], uninterrupted: dict, tmp_path: Path) -> None:
    v1, _, questions = corpora
    home = tmp_path / "home"
    for point, committed in V1_KILLS:
        killed = run_cli("index", "-q", str(v1), home=home, env={"TANYA_FAULT_KILL": point})
        assert killed.returncode == KILLED, (point, killed.stderr)
        held = check(home)  # consistent right after the kill: whole batches, nothing half-written
        assert held["documents"] == committed, point
    last = index_ok(home, v1)
    assert f"0 added, 0 updated, {CRASH_DOCS} unchanged" in last.stdout
    assert_finished_like(home, "v1", uninterrupted, questions)


def test_a_killed_update_keeps_each_document_whole_and_the_next_run_finishes_it(
        corpora: tuple[Path, Path, list[str]], uninterrupted: dict, tmp_path: Path) -> None:
    """Replacing documents: every document stays, answering from one version, old or new."""
    _, v2, questions = corpora
    home = tmp_path / "home"
    shutil.copytree(uninterrupted["v1"], home, ignore=shutil.ignore_patterns("index.lock"))
    new_length = {d["id"]: len(d["text"]) for d in map(json.loads, v2.read_text().splitlines())}
    for point, rewritten in (("vectors_added:2", EMBED_BATCH_DOCS), ("committed:1", 2 * EMBED_BATCH_DOCS)):
        killed = run_cli("index", "-q", str(v2), home=home, env={"TANYA_FAULT_KILL": point})
        assert killed.returncode == KILLED
        assert check(home)["documents"] == CRASH_DOCS  # replaced, never lost
        listed = [json.loads(line) for line in run_cli("docs", "--json", home=home).stdout.splitlines()]
        assert sum(new_length[d["doc_id"]] == d["chars"] != uninterrupted["v1_chars"][d["doc_id"]]
                   for d in listed) == rewritten, point  # whole batches of the new version
    kirby = run_cli("ask", "--json", SEED_QUESTIONS[0], home=home)  # a document the update rewrote
    assert json.loads(kirby.stdout)["citations"][0]["doc_id"] == KIRBY_DOC
    index_ok(home, v2)
    assert_finished_like(home, "v2", uninterrupted, questions)


def test_a_killed_delete_is_consistent_and_the_next_writer_cleans_up(
        corpora: tuple[Path, Path, list[str]], uninterrupted: dict, tmp_path: Path) -> None:
    v1, _, questions = corpora
    homes = {name: tmp_path / name for name in ("killed", "uninterrupted")}
    for home in homes.values():
        shutil.copytree(uninterrupted["v1"], home, ignore=shutil.ignore_patterns("index.lock"))
    killed = run_cli("delete", KIRBY_DOC, home=homes["killed"], env={"TANYA_FAULT_KILL": "deleted:1"})
    assert killed.returncode == KILLED
    held = check(homes["killed"])
    assert held["documents"] == CRASH_DOCS - 1 and held["leftovers"] > 0  # gone, its vectors invisible
    cited = {c["doc_id"] for a in answers(homes["killed"], SEED_QUESTIONS) for c in a["citations"]}
    assert KIRBY_DOC not in cited
    assert check(homes["killed"])["leftovers"] == 0  # the asking process found no writer, so it cleaned up
    # The corpus still holds it: the next writer removes the leftovers, then adds it again, exactly as
    # after a delete that was not interrupted.
    assert run_cli("delete", KIRBY_DOC, home=homes["uninterrupted"]).returncode == 0
    for home in homes.values():
        assert "1 added" in index_ok(home, v1).stdout
    assert check(homes["killed"]) == check(homes["uninterrupted"]) == uninterrupted["v1_counts"]
    assert answers(homes["killed"], questions) == answers(homes["uninterrupted"], questions)


def test_index_killed_at_random_moments_then_finished(corpora: tuple[Path, Path, list[str]], uninterrupted: dict,
                                                      tmp_path: Path) -> None:
    """Kills a timer chooses: mostly while embedding, sometimes inside Chroma's or SQLite's own writes."""
    v1, _, questions = corpora
    home = tmp_path / "home"
    rng = random.Random(7)
    kills = 0
    for _ in range(3):
        proc = cli_process("index", "-q", str(v1), home=home)
        time.sleep(rng.uniform(2.5, 6.0))  # the process needs ~2 s to start; the run ~5 s more
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(timeout=120)
        check(home)
    assert kills >= 2  # (a run may end before its timer)
    index_ok(home, v1)
    assert_finished_like(home, "v1", uninterrupted, questions)


# ----- two writers, and answers while indexing ------------------------------------------------------


def writer_lock_is_held(home: Path) -> bool:
    """Whether some process holds the data home's writer lock (index/index.py ``Index.writing``), read from
    /proc/locks: trying the lock ourselves could make the writer fail."""
    lock = home / "index.lock"
    if not lock.exists():
        return False
    inode = f":{lock.stat().st_ino}"
    return any(fields[1] == "FLOCK" and fields[5].endswith(inode)
               for fields in (line.split() for line in Path("/proc/locks").read_text().splitlines()))


def test_a_second_process_on_an_embedded_index_is_refused_with_a_reason(
        corpora: tuple[Path, Path, list[str]], seed_home: Path, tmp_path: Path) -> None:
    """Embedded Chroma belongs to one process (a second one would read a stale vector index, two writing
    corrupt it): while `tanya serve` has the index open, other processes are refused, not let in."""
    v1, _, _ = corpora
    home = tmp_path / "home"
    shutil.copytree(seed_home, home)
    with running_server(home, tmp_path / "serve.log") as url:
        for args in (("index", str(v1)), ("delete", KIRBY_DOC), ("ask", SEED_QUESTIONS[0])):
            result = run_cli(*args, home=home)
            assert result.returncode == 1, result.stderr
            assert "is open in pid" in result.stderr and "tanya serve" in result.stderr
            assert "Traceback" not in result.stderr
        status, body = http("POST", f"{url}/api/ask", {"question": SEED_QUESTIONS[0]})
        assert status == 200 and body["citations"][0]["doc_id"] == KIRBY_DOC
    assert check(home)["documents"] == 2


def test_two_index_runs_at_once_one_finishes_and_one_is_refused(
        corpora: tuple[Path, Path, list[str]], uninterrupted: dict, tmp_path: Path) -> None:
    v1, _, _ = corpora
    home = tmp_path / "home"
    first = cli_process("index", "-q", str(v1), home=home)
    deadline = time.time() + 60
    while not (home / "chroma.lock").exists() or not (home / "chroma.lock").read_text():
        assert time.time() < deadline and first.poll() is None
        time.sleep(0.1)
    second = run_cli("index", "-q", str(v1), home=home)
    assert second.returncode == 1 and "is open in pid" in second.stderr and "Traceback" not in second.stderr
    assert first.wait(timeout=300) == 0
    assert check(home) == uninterrupted["v1_counts"]


def test_questions_are_answered_while_a_large_upload_is_indexed(
        corpora: tuple[Path, Path, list[str]], seed_home: Path, tmp_path: Path) -> None:
    """One `tanya serve`: uploads are written while questions go on being answered, with exact citations;
    a second upload meanwhile waits its turn."""
    v1 = corpora[0]
    home = tmp_path / "home"
    shutil.copytree(seed_home, home)
    docs = [json.loads(line) for line in v1.read_text().splitlines()][2:]
    late = {**docs[0], "id": "unggahan-kedua", "text": "Unggahan kedua menunggu gilirannya. " + docs[0]["text"]}
    with running_server(home, tmp_path / "serve.log") as url:
        uploads: list[tuple[int, dict]] = []
        writers = [threading.Thread(target=lambda body=body: uploads.append(
            http("POST", f"{url}/api/documents", {"documents": body}))) for body in (docs, [late])]
        writers[0].start()
        time.sleep(0.5)
        writers[1].start()
        asked = 0
        while writers[0].is_alive() or asked < 5:
            status, answer = http("POST", f"{url}/api/ask", {"question": SEED_QUESTIONS[asked % 2]})
            assert status == 200, answer
            for c in answer["citations"]:
                _, doc = http("GET", f"{url}/api/documents/{c['doc_id']}")
                assert doc["text"][c["start"] : c["end"]] == c["sentence"]
            asked += 1
        for w in writers:
            w.join(timeout=300)
        assert sorted(status for status, _ in uploads) == [200, 200]
        _, listed = http("GET", f"{url}/api/documents")
        assert len(listed["documents"]) == 2 + len(docs) + 1
    assert asked >= 5
    assert check(home)["documents"] == 2 + len(docs) + 1


def test_with_a_chroma_server_another_process_indexes_while_serve_answers(
        corpora: tuple[Path, Path, list[str]], chroma_server: str, tmp_path: Path, model_dir: Path) -> None:
    v1, _, _ = corpora
    home = tmp_path / "home"
    env = {"TANYA_CHROMA_URL": chroma_server}
    assert run_cli("index", "-q", str(CORPUS), home=home, env=env).returncode == 0
    with running_server(home, tmp_path / "serve.log", env=env) as url:
        writer = cli_process("index", "-q", str(v1), home=home, env=env)
        asked, refused_upload = 0, None
        while writer.poll() is None:
            status, answer = http("POST", f"{url}/api/ask", {"question": SEED_QUESTIONS[0]})
            assert status == 200 and answer["citations"][0]["doc_id"] == KIRBY_DOC, answer
            asked += 1
            if refused_upload is None and writer_lock_is_held(home):  # an upload meanwhile: refused, a 409
                refused_upload = http("POST", f"{url}/api/documents",
                                      {"documents": [{"id": "sela", "text": "Unggahan di sela pengindeksan."}]})
        assert writer.returncode == 0 and asked >= 3
        assert refused_upload is not None and refused_upload[0] == 409, refused_upload
        assert "another process is writing" in refused_upload[1]["detail"]
        passage = json.loads(v1.read_text().splitlines()[-1])
        status, answer = http("POST", f"{url}/api/ask", {"question": passage["text"][:120]})
        assert status == 200 and answer["citations"][0]["doc_id"] == passage["id"]  # seen without a restart
    assert check(home, chroma_server)["documents"] == CRASH_DOCS


# ----- load ------------------------------------------------------------------------------------------


def test_sixteen_clients_get_no_errors_and_memory_stays_flat(seed_home: Path, tmp_path: Path) -> None:
    """benchmarks/load.py's run, shorter (the 60 s figures are in docs/reliability.md): every answer a 200
    whose citations match their documents, and no growth of the server's memory while it serves."""
    from benchmarks.load import run_load

    home = tmp_path / "home"
    shutil.copytree(seed_home, home)
    gold = (REPO / "eval" / "data" / "seed_gold.jsonl").read_text(encoding="utf-8").splitlines()
    questions = [json.loads(line)["question"] for line in gold]
    with running_server_process(home, tmp_path / "serve.log") as (url, proc):
        run_load(url, questions, clients=16, seconds=10, server_pid=proc.pid)  # warm-up (see the benchmark)
        result = run_load(url, questions, clients=16, seconds=20, server_pid=proc.pid)
    summary = result.summary()
    print(f"load: {summary}")
    assert result.errors == 0, result.error_samples
    assert result.requests >= 16
    assert summary["rss_growth_mb"] <= 0.05 * summary["rss_start_mb"], result.rss_mb
