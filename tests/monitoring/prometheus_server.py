"""A real Prometheus server for tests: the shipped rules, a temp config and storage, a free port."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
PROMETHEUS_BINARY = shutil.which("prometheus") or "/usr/bin/prometheus"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def local_config(jobs: list[str], targets_dir: Path, interval: str) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with its jobs reading targets from files, and fast intervals.

    The job names and the rule files are the shipped ones, so the server evaluates the real rules
    on series labelled exactly as in production. Targets come from `<targets_dir>/<job>.json`
    (file service discovery), so a test can add an endpoint whose port is known only later.
    """
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": interval, "evaluation_interval": interval, "scrape_timeout": interval}
    config["rule_files"] = [str(PROMETHEUS_DIR / pattern) for pattern in config["rule_files"]]
    shipped = {job["job_name"] for job in config["scrape_configs"]}
    missing = set(jobs) - shipped
    if missing:
        raise ValueError(f"jobs missing from prometheus.yml: {sorted(missing)}")
    config["scrape_configs"] = [
        {"job_name": job, "file_sd_configs": [{"files": [str(targets_dir / f"{job}.json")], "refresh_interval": "1s"}]}
        for job in jobs
    ]
    return config


class PrometheusServer:
    """/usr/bin/prometheus on 127.0.0.1:<free port> with a temporary config and TSDB; `stop()` ends it."""

    def __init__(self, workdir: Path, jobs: list[str], interval: str = "500ms") -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._targets_dir = workdir / "targets"
        self._targets_dir.mkdir(parents=True, exist_ok=True)
        for job in jobs:
            self.set_targets(job, [])
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(local_config(jobs, self._targets_dir, interval)))
        self.log_path = workdir / "prometheus.log"
        self._log = self.log_path.open("w")
        self._process = subprocess.Popen(
            [
                PROMETHEUS_BINARY,
                f"--config.file={config_path}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self._wait_ready(timeout_s=30)

    def set_targets(self, job: str, addresses: list[str]) -> None:
        """Scrape `addresses` (host:port) under `job` from now on (written atomically for the watcher)."""
        path = self._targets_dir / f"{job}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps([{"targets": addresses, "labels": {}}]))
        os.replace(temporary, path)

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self._process.returncode}: {self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as response:
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready after {timeout_s}s: {self.log_path.read_text()}")

    def api(self, path: str, **params: str) -> Any:
        """GET /api/v1/<path>; returns `data` of a successful answer, raises with Prometheus' error."""
        query = urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=10) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            body = json.load(error)
        if body.get("status") != "success":
            raise RuntimeError(f"{path} {params}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Result of an instant query at the current time (a vector or a one-element scalar list)."""
        data = self.api("query", query=expr)
        return data["result"] if data["resultType"] == "vector" else [{"value": data["result"]}]

    def query_range(self, expr: str, start: float, end: float, step: str = "1s") -> list[dict[str, Any]]:
        """Series of `expr` evaluated every `step` from `start` to `end` (Unix seconds)."""
        return self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}", step=step)["result"]

    def stop(self) -> None:
        self._process.terminate()
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._log.close()
