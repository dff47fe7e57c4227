"""A short real pipeline run through the `pepnet` command line, for the live Prometheus test.

`pepnet topics create`, then a `pepnet worker` (job pepnet-worker), `pepnet simulate` and
`pepnet train --idle-timeout` (job pepnet-trainer), each a separate process as in production, on
topics, consumer groups and ports of their own so that it can share a broker with other tests.
Replace by one `pepnet demo` process once that command exists (same environment variables).
"""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from tests.monitoring.prometheus_server import REPO_ROOT

TOPIC_ROLES = ("impressions", "actions", "samples", "samples_replay", "dead_letters")


class CliPipeline:
    """Starts the pipeline's processes in `start()`; `trainer_running()` until training ends; `stop()`."""

    def __init__(self, bootstrap: str, trainer_port: int, worker_port: int, workdir: Path, impressions: int) -> None:
        prefix = f"pepnet-mon-{uuid.uuid4().hex[:8]}"
        self.run_dir = workdir / "run"
        self.workdir = workdir
        self.impressions = impressions
        self.env = {
            **os.environ,
            "PYTHONPATH": str(REPO_ROOT),
            "PEPNET_KAFKA_BOOTSTRAP": bootstrap,
            "PEPNET_MONITORING_TRAINER_PORT": str(trainer_port),
            "PEPNET_MONITORING_WORKER_PORT": str(worker_port),
            "PEPNET_MONITORING_KAFKA_STATS_INTERVAL_MS": "500",
            "PEPNET_JOINER_APP_ID": f"{prefix}-joiner",
            "PEPNET_TRAINER_CONSUMER_GROUP": f"{prefix}-trainer",
            "PEPNET_TRAINER_PASS_SAMPLES": "1000",
            "PEPNET_RUN_DIR": str(self.run_dir),
            # The faust worker (aiokafka) cannot read the default lz4 batches without the `lz4` package.
            "PEPNET_KAFKA_PRODUCER": "{compression.type: gzip}",
            **{f"PEPNET_KAFKA_TOPICS_{role.upper()}_NAME": f"{prefix}.{role}" for role in TOPIC_ROLES},
        }
        self._processes: dict[str, subprocess.Popen] = {}

    def _pepnet(self, name: str, *args: str) -> subprocess.Popen:
        log = (self.workdir / f"{name}.log").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "stream.cli.main", *args],
            cwd=REPO_ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        self._processes[name] = process
        return process

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self._pepnet("topics", "topics", "create").wait(timeout=120) != 0:
            raise RuntimeError(f"pepnet topics create failed:\n{self.log('topics')}")
        self._pepnet("worker", "worker")
        self._pepnet("simulate", "simulate", "--impressions", str(self.impressions), "--no-progress")
        self._pepnet("train", "train", "--idle-timeout", "20")

    def trainer_running(self) -> bool:
        return self._processes["train"].poll() is None

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text()[-3000:]

    def logs(self) -> str:
        return "\n".join(f"--- {name}:\n{self.log(name)}" for name in self._processes)

    def stop(self) -> None:
        for process in self._processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self._processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
