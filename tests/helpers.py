"""Helpers for tests that drive Tanya as a user would."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "corpus"
BIN = Path(sys.executable).parent
KIRBY_DOC = "000_3befbf9f5ffaf878"
THOMAS_DOC = "002_bf2d7060419eb056"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args: str, home: Path, stdin: str | None = None, env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    """The installed `tanya` console script, as a user runs it."""
    exe = shutil.which("tanya", path=str(BIN)) or str(BIN / "tanya")
    full_env = {**os.environ, "TANYA_HOME": str(home), **(env or {})}
    return subprocess.run([exe, *args], input=stdin, capture_output=True, text=True, env=full_env, timeout=600)


def cli_process(*args: str, home: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`tanya ARGS` started in the background (output discarded), for tests that interrupt it."""
    exe = shutil.which("tanya", path=str(BIN)) or str(BIN / "tanya")
    full_env = {**os.environ, "TANYA_HOME": str(home), **(env or {})}
    return subprocess.Popen([exe, *args], env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            text=True)


@contextlib.contextmanager
def running_server(home: Path, log_path: Path, env: dict[str, str] | None = None,
                   args: tuple[str, ...] = ()) -> Iterator[str]:
    """A real `tanya serve` on a free loopback port; yields its base URL once /healthz answers."""
    with running_server_process(home, log_path, env, args) as (url, _):
        yield url


@contextlib.contextmanager
def running_server_process(home: Path, log_path: Path, env: dict[str, str] | None = None,
                           args: tuple[str, ...] = ()) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``running_server``, also yielding the process (for its pid)."""
    port = free_port()
    exe = shutil.which("tanya", path=str(BIN)) or str(BIN / "tanya")
    full_env = {**os.environ, "TANYA_HOME": str(home), **(env or {})}
    with log_path.open("w") as log:
        proc = subprocess.Popen([exe, "serve", "--port", str(port), *args], env=full_env, stdout=log,
                                stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        deadline = time.time() + 180
        try:
            while True:
                try:
                    urllib.request.urlopen(f"{url}/healthz", timeout=2)
                    break
                except OSError:
                    if proc.poll() is not None or time.time() > deadline:
                        raise RuntimeError(f"tanya serve did not start: {log_path.read_text()[-3000:]}") from None
                    time.sleep(0.3)
            yield url, proc
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()


def http(method: str, url: str, body: object = None, headers: dict[str, str] | None = None,
         raw: bytes | None = None) -> tuple[int, dict]:
    """One HTTP request; returns (status, JSON body) for successes and errors alike."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as exc:
        text = exc.read()
        try:
            return exc.code, json.loads(text)
        except ValueError:
            return exc.code, {"raw": text.decode(errors="replace")}


# A server beside another test worker can take longer than httpx's 5 s default to answer an upload or a
# question; these tests are about the answer, not its speed (benchmarks measure that).
SERVER_TIMEOUT = 120  # seconds


def gradio_call(url: str, name: str, data: list) -> str:
    """One call of a Gradio event through its public HTTP route, as `curl` does: the result stream's text."""
    import httpx

    started = httpx.post(f"{url}/gradio_api/call/{name}", json={"data": data}, timeout=60)
    assert started.status_code == 200, started.text
    return httpx.get(f"{url}/gradio_api/call/{name}/{started.json()['event_id']}", timeout=120).text


def start_chroma(data: Path, port: int, log_path: Path) -> subprocess.Popen[bytes]:
    """A real `chroma run` on 127.0.0.1:port over ``data``, returned once its heartbeat answers."""
    log = log_path.open("a")
    proc = subprocess.Popen([str(BIN / "chroma"), "run", "--path", str(data), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1)
            return proc
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                raise RuntimeError(f"chroma run did not start: {log_path.read_text()[-2000:]}") from None
            time.sleep(0.3)


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class StoppableChroma:
    """A real `chroma run` that a test can stop and start again on the same port and data."""

    def __init__(self, folder: Path) -> None:
        self.port, self.data, self.log = free_port(), folder / "chroma-data", folder / "chroma.log"
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = start_chroma(self.data, self.port, self.log)

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


@contextlib.contextmanager
def served_over_stoppable_chroma(folder: Path) -> Iterator[tuple[str, StoppableChroma]]:
    """The seed corpus indexed into a `chroma run` server and served by a real `tanya serve`; yields the
    serve URL and the Chroma server (for fault tests that stop it)."""
    chroma = StoppableChroma(folder)
    chroma.start()
    env = {"TANYA_CHROMA_URL": chroma.url}
    try:
        assert run_cli("index", str(CORPUS), home=folder / "home", env=env).returncode == 0
        with running_server(folder / "home", folder / "serve.log", env=env) as url:
            yield url, chroma
    finally:
        chroma.stop()
