"""Waiting for a condition with a deadline (tests hold on a loaded machine: never a fixed sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable

POLL_INTERVAL_S = 0.02  # between two checks of a condition


def wait_until(condition: Callable[[], object], what: str, timeout_s: float = 120.0) -> None:
    """Return once ``condition()`` is true; fail with ``what`` (what did not happen) after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:g} s waiting until {what}"
        time.sleep(POLL_INTERVAL_S)
