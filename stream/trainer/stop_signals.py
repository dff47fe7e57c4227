"""SIGTERM (and SIGINT) for a running trainer: finish the pass in training, checkpoint it, exit 0.

A checkpoint holds whole passes (their end offsets), so the pass being trained is finished,
exported and checkpointed rather than cut short: at most one pass of work (seconds), after which
a restart resumes exactly there. While the trainer waits for data it stops at once. A second
signal stops immediately (``KeyboardInterrupt``); the atomic writers leave the last checkpoint whole.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType

log = logging.getLogger(__name__)


@contextmanager
def stop_on_signals(stop: Callable[[], None]) -> Iterator[list[str]]:
    """Within the block, SIGTERM and SIGINT call ``stop()`` (a second one interrupts at once).
    Yields the list of signal names received. Main thread only (Python's signal rule)."""
    received: list[str] = []

    def handle(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if received:
            raise KeyboardInterrupt
        received.append(name)
        log.warning("%s: finishing the pass in training and checkpointing it, then stopping (again: at once)", name)
        stop()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield received
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
