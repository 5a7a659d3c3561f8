"""Helpers for tests that drive Tanya as a user would."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
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
