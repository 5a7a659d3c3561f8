"""Fault injection for the crash tests (tests/test_reliability.py).

``TANYA_FAULT_KILL=<point>:<n>`` makes the process SIGKILL itself the n-th time it reaches ``<point>``:
a real kill at an exact step of the write protocol, which a timer cannot hit reliably. The variable is
read once at import; unset (normal use), ``fault_point`` returns at once.
"""

from __future__ import annotations

import os
import signal

_FAULT = os.environ.get("TANYA_FAULT_KILL", "")
_hits: dict[str, int] = {}


def fault_point(name: str) -> None:
    if not _FAULT:
        return
    point, _, nth = _FAULT.partition(":")
    if point == name:
        _hits[name] = _hits.get(name, 0) + 1
        if _hits[name] == int(nth or 1):
            os.kill(os.getpid(), signal.SIGKILL)
