"""The `tanya` console script, run as a user runs it (real process, real model, real Chroma)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import CORPUS, KIRBY_DOC, THOMAS_DOC, run_cli

QUESTIONS = ["Siapa juru bicara Departemen Luar Negeri AS?",
             "Who is the spokesman of the US State Department?",
             "Berapa orang tewas dalam serangan terhadap konvoi bantuan?"]


@pytest.fixture(scope="module")
def cli_home(tmp_path_factory: pytest.TempPathFactory, model_dir: Path) -> Path:
    home = tmp_path_factory.mktemp("cli-home")
    result = run_cli("index", str(CORPUS), home=home)
    assert result.returncode == 0, result.stderr
    assert "2 added, 0 updated, 0 unchanged" in result.stdout
    assert "indexing" in result.stderr  # the progress bar
    return home


def texts_by_doc() -> dict[str, str]:
    return {p.stem: p.read_text(encoding="utf-8") for p in CORPUS.glob("*.txt")}


def test_ask_json_batch_reads_one_question_per_line(cli_home: Path) -> None:
    result = run_cli("ask", "--json", "-", home=cli_home, stdin="\n".join(QUESTIONS) + "\n\n")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["question"] for r in rows] == QUESTIONS
    texts = texts_by_doc()
    for row in rows:
        assert set(row) >= {"question", "answer", "abstained", "citations"}
        for c in row["citations"]:
            assert set(c) >= {"n", "doc_id", "title", "sentence", "start", "end", "score"}
            assert texts[c["doc_id"]][c["start"] : c["end"]] == c["sentence"]
            assert f"[{c['n']}]" in row["answer"]
    kirby = rows[0]
    assert not kirby["abstained"] and "Kirby" in " ".join(c["sentence"] for c in kirby["citations"])


def test_ask_prints_answer_with_citations_listed(cli_home: Path) -> None:
    result = run_cli("ask", QUESTIONS[0], home=cli_home)
    assert result.returncode == 0, result.stderr
    assert "[1]" in result.stdout and KIRBY_DOC in result.stdout


def test_retrieve_docs_show_delete(cli_home: Path, tmp_path: Path) -> None:
    retrieved = run_cli("retrieve", "Kolonel John J. Thomas", "--k", "3", "--json", home=cli_home)
    assert retrieved.returncode == 0, retrieved.stderr
    hits = [json.loads(line) for line in retrieved.stdout.splitlines()]
    assert len(hits) == 3 and hits[0]["doc_id"] == THOMAS_DOC
    texts = texts_by_doc()
    assert all(texts[h["doc_id"]][h["start"] : h["end"]] == h["text"] for h in hits)

    docs = run_cli("docs", home=cli_home)
    assert docs.returncode == 0 and KIRBY_DOC in docs.stdout and THOMAS_DOC in docs.stdout
    shown = run_cli("show", KIRBY_DOC, home=cli_home)
    assert shown.stdout.rstrip("\n") == texts[KIRBY_DOC].rstrip("\n")


@pytest.mark.parametrize("args", [
    ("index", "/nonexistent/path"),
    ("ask", "   "),
    ("retrieve", "gencatan senjata", "--k", "0"),
    ("show", "no-such-doc"),
    ("delete", "no-such-doc"),
])
def test_user_errors_exit_non_zero_with_one_line_and_no_traceback(cli_home: Path, args: tuple[str, ...]) -> None:
    result = run_cli(*args, home=cli_home)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().startswith("tanya: error:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_file_in_a_batch_keeps_the_index_intact(cli_home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "baru", "text": "Teks baru."}\n{"id": 5\n', encoding="utf-8")
    result = run_cli("index", str(bad), home=cli_home)
    assert result.returncode != 0 and "bad.jsonl:2" in result.stderr and "Traceback" not in result.stderr
    docs = run_cli("docs", "--json", home=cli_home)
    assert sorted(json.loads(line)["doc_id"] for line in docs.stdout.splitlines()) == [KIRBY_DOC, THOMAS_DOC]


def test_chat_answers_a_follow_up(cli_home: Path) -> None:
    result = run_cli("chat", home=cli_home, stdin="Siapa juru bicara Central Command AS?\nApa pangkatnya?\n")
    assert result.returncode == 0, result.stderr
    # Both questions answered (the follow-up is not refused), each citing the sentence naming Kolonel Thomas.
    assert "Maaf" not in result.stdout and result.stdout.count("Kolonel John J. Thomas") >= 2, result.stdout


def test_delete_via_cli(tmp_path: Path, model_dir: Path) -> None:
    home = tmp_path / "home"
    assert run_cli("index", str(CORPUS / f"{THOMAS_DOC}.txt"), home=home).returncode == 0
    result = run_cli("delete", THOMAS_DOC, home=home)
    assert result.returncode == 0 and f"deleted {THOMAS_DOC}" in result.stdout
    assert THOMAS_DOC not in run_cli("docs", home=home).stdout


def test_asking_an_empty_index_says_how_to_fill_it(tmp_path: Path, model_dir: Path) -> None:
    result = run_cli("ask", "Siapa juru bicara?", home=tmp_path / "empty-home")
    assert result.returncode == 1 and "is empty: run `tanya index PATH` first" in result.stderr
    assert "Traceback" not in result.stderr


# Bytes that are not UTF-8 reach Python's argv as lone surrogates (\udcff for the byte 0xff): the subprocess
# sends them back as the raw bytes, exactly as a shell passes $'Siapa \xff?'.
@pytest.mark.parametrize("args", [
    ("ask", "Siapa \udcff?"),
    ("ask", "--json", "Siapa \udcff?"),
    ("retrieve", "gencatan \udce9"),
    ("show", "a\udcff"),
    ("delete", "\udcff"),
])
def test_an_argument_that_is_not_utf8_is_refused_in_one_line(cli_home: Path, args: tuple[str, ...]) -> None:
    """It crashed with UnicodeEncodeError where the lock file names the command."""
    result = run_cli(*args, home=cli_home)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.startswith("tanya: error: ") and "is not UTF-8 text (byte 0x" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_latin1_file_name_is_indexed_under_a_safe_id(cli_home: Path, tmp_path: Path) -> None:
    name = b"berita-caf\xe9 baru.txt"  # Latin-1, as an old archive or a Windows share may hold
    path = Path((bytes(tmp_path) + b"/" + name).decode("utf-8", "surrogateescape"))
    path.write_bytes(b"Kafe baru dibuka di Braga.\n")
    result = run_cli("index", "-q", str(path), home=cli_home)
    assert result.returncode == 0 and "1 added" in result.stdout, result.stderr
    try:
        shown = run_cli("show", "berita-caf-baru", home=cli_home)
        assert shown.returncode == 0 and shown.stdout == "Kafe baru dibuka di Braga.\n\n", shown
    finally:
        assert run_cli("delete", "berita-caf-baru", home=cli_home).returncode == 0


def test_control_characters_in_documents_never_reach_the_terminal_raw(cli_home: Path, tmp_path: Path) -> None:
    """An escape sequence in a title or text (retitling the terminal, erasing the line, hiding text) is shown
    as \\x1b...; `tanya show --raw` still gives the exact text, and --json stays valid JSON of the same values."""
    # A named answer: the escape sequences' leftovers ("]0;DIRETAS", "[2K") are noise the reader reads too.
    text = ("Judul\n\x1b]0;DIRETAS\x07Polisi menangkap\x1b[2K\r Budi Santoso di Medan.\tKalimat kedua\x9b31m.\r\n"
            "Baris \x00\x08terakhir.\n").replace("\x00", "")
    title = "Berita \x1b[31mmerah\x1b[0m\nbaris dua\tkolom"
    source = tmp_path / "kontrol.jsonl"
    source.write_text(json.dumps({"id": "kontrol", "text": text, "title": title}) + "\n", encoding="utf-8")
    assert run_cli("index", "-q", str(source), home=cli_home).returncode == 0
    try:
        docs = run_cli("docs", home=cli_home)
        shown = run_cli("show", "kontrol", home=cli_home)
        asked = run_cli("ask", "Siapa yang ditangkap polisi di Medan?", home=cli_home)
        for out in (docs.stdout, shown.stdout, asked.stdout):
            assert not set(out) & ({chr(c) for c in range(32)} - {"\n", "\t"} | {chr(c) for c in range(0x7f, 0xa0)})
        line = next(ln for ln in docs.stdout.splitlines() if ln.startswith("kontrol\t"))
        assert line.endswith("\\x1b[31mmerah\\x1b[0m\\nbaris dua\\tkolom") and line.count("\t") == 3, line
        assert "\\x1b]0;DIRETAS\\x07Polisi menangkap\\x1b[2K\\r Budi Santoso" in shown.stdout
        assert "\\x9b31m.\r\n" not in shown.stdout and "Kalimat kedua\\x9b31m." in shown.stdout
        assert "[1]" in asked.stdout and "\\x1b[31mmerah" in asked.stdout  # a cited sentence and title, escaped
        raw = run_cli("show", "--raw", "kontrol", home=cli_home)
        # (text=True reads "\r" and "\r\n" as "\n")
        assert raw.returncode == 0 and raw.stdout == text.replace("\r\n", "\n").replace("\r", "\n") + "\n"
        listed = run_cli("docs", "--json", home=cli_home)
        row = next(json.loads(ln) for ln in listed.stdout.splitlines() if '"kontrol"' in ln)
        assert row["title"] == title and "\x9b" not in listed.stdout and "\x1b" not in listed.stdout
    finally:
        assert run_cli("delete", "kontrol", home=cli_home).returncode == 0


def test_an_error_naming_a_file_stays_one_line(cli_home: Path, tmp_path: Path) -> None:
    bad = tmp_path / "rusak\n\x1b[2Jbaris.jsonl"
    bad.write_bytes(b"{not json\n")
    result = run_cli("index", str(bad), home=cli_home)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert len(result.stderr.splitlines()) == 1 and "\x1b" not in result.stderr, result.stderr
    assert "rusak\\n\\x1b[2Jbaris.jsonl:1: not a JSON object" in result.stderr
