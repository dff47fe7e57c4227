"""A `pepnet` subcommand run as a process for a test, its stdout and stderr in one log file."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import REPO_ROOT


class PepnetProcess:
    """``python -m stream.cli.main ARGS`` from the repository root, logging to ``log_path``."""

    def __init__(self, args: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.log_path = log_path
        self.process = subprocess.Popen([sys.executable, "-m", "stream.cli.main", *args], cwd=REPO_ROOT, env=env,
                                        stdout=log_path.open("w"), stderr=subprocess.STDOUT)  # fmt: skip

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def lines(self) -> list[str]:
        return self.text().splitlines()

    def running(self) -> bool:
        return self.process.poll() is None

    def wait_for(self, pattern: str, after: int = 0, timeout_s: float = 120) -> int:
        """Index of the first log line from ``after`` on that matches ``pattern``; fails at the
        timeout or when the process exits first."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            assert self.running(), "\n".join(self.lines())
            for index, line in enumerate(self.lines()[after:], start=after):
                if re.search(pattern, line):
                    return index
            time.sleep(0.2)
        raise AssertionError(f"no line matching {pattern!r} within {timeout_s} s:\n" + "\n".join(self.lines()))

    def stop(self, timeout_s: float = 60) -> None:
        """Interrupt it (SIGINT, as Ctrl-C); kill it if it has not exited after ``timeout_s``."""
        if self.running():
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
