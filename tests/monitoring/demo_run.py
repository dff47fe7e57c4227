"""A short real `pepnet demo` run for the live Prometheus test.

The demo runs the trainer in its own process (metrics on PEPNET_MONITORING_TRAINER_PORT) and starts
a `pepnet worker` subprocess whose metrics port is chosen by the system; the worker prints
`metrics: http://host:port/metrics` into `<run_dir>/worker.log`, which `worker_address()` reads.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.monitoring.prometheus_server import REPO_ROOT

WORKER_METRICS_LINE = re.compile(rb"metrics: http://([\w.\-\[\]:]+:\d+)/metrics")
WORKER_PID_LINE = re.compile(rb"worker: pid (\d+)")


class DemoRun:
    """`python -m stream.cli.main demo` with small sizes against the given broker."""

    def __init__(self, bootstrap: str, trainer_port: int, workdir: Path) -> None:
        self.workdir = workdir
        self.run_dir = workdir / "run"
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "PEPNET_KAFKA_BOOTSTRAP": bootstrap,
            "PEPNET_MONITORING_TRAINER_PORT": str(trainer_port),
            "PEPNET_MONITORING_KAFKA_STATS_INTERVAL_MS": "500",
        }
        self._process: subprocess.Popen | None = None
        self.log_path = workdir / "demo.log"

    def start(self, impressions: int, passes: int, pass_samples: int, hold_metrics: bool = False) -> None:
        """Start the demo; with ``hold_metrics`` it keeps the trainer's endpoint up until :meth:`stop`."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._process = subprocess.Popen(
            [
                sys.executable, "-m", "stream.cli.main", "demo", "--impressions", str(impressions),
                "--passes", str(passes), "--pass-samples", str(pass_samples), "--run-dir", str(self.run_dir),
                *(["--hold-metrics"] if hold_metrics else []),
            ],
            cwd=REPO_ROOT, env=self.env, stdout=self.log_path.open("w"), stderr=subprocess.STDOUT,
        )  # fmt: skip

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def holding_metrics(self) -> bool:
        """True once the demo has printed its summary and holds the trainer's endpoint up."""
        return b"metrics stay up for a last scrape" in self.log_path.read_bytes() if self.log_path.is_file() else False

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def worker_address(self) -> str | None:
        """host:port of the worker's metrics endpoint once the worker has logged it."""
        log = self.run_dir / "worker.log"
        match = WORKER_METRICS_LINE.search(log.read_bytes()) if log.is_file() else None
        return match.group(1).decode() if match else None

    def logs(self) -> str:
        worker_log = self.run_dir / "worker.log"
        worker = worker_log.read_text(errors="replace")[-2000:] if worker_log.is_file() else ""
        return f"--- demo:\n{self.log_path.read_text(errors='replace')[-3000:]}\n--- worker:\n{worker}"

    def stop(self) -> None:
        """Interrupt the demo (it then stops its worker); kill both if that takes over a minute."""
        if self._process is None or self._process.poll() is not None:
            return
        self._process.send_signal(signal.SIGINT)
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
            match = WORKER_PID_LINE.search(self.log_path.read_bytes())
            if match:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(match.group(1)), signal.SIGKILL)
