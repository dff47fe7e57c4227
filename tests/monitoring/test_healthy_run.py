"""A healthy pipeline raises no alert: a real Prometheus evaluates the shipped rules while
`pepnet simulate --rate` feeds a `pepnet worker` and a `pepnet train` (the docker-compose layout,
as processes) for longer than the longest `for:` of the rules, and no alert ever fires; every
scrape of the trainer and the worker succeeds (`up` never drops to 0 under the load of the run).

Each alert's firing is tested by promtool (deploy/prometheus/tests, tests/monitoring/test_prometheus_rules.py).
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
import yaml

from stream.config.pipeline import PipelineConfig
from tests.monitoring.prometheus_server import PROMETHEUS_BINARY, PROMETHEUS_DIR, PrometheusServer
from tests.pepnet_process import PepnetProcess

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.prometheus,
    pytest.mark.skipif(not Path(PROMETHEUS_BINARY).exists(), reason="prometheus missing: apt-get install prometheus"),
]

METRICS_URL = re.compile(r"metrics(?::| at) http://([\w.\-\[\]:]+:\d+)/metrics")
SCRAPE_INTERVAL = "5s"  # also the scrape timeout: a loaded machine stalls a Python process ~2 s at worst
FIRST_PASS_TIMEOUT_S = 300


def longest_for_s() -> float:
    """The longest `for:` of the shipped alert rules, in seconds."""
    units = {"s": 1, "m": 60, "h": 3600}
    longest = 0.0
    for path in (PROMETHEUS_DIR / "rules").glob("*.yml"):
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                if "alert" in rule:
                    text = rule.get("for", "0s")
                    longest = max(longest, float(text[:-1]) * units[text[-1]])
    return longest


def metrics_address(process: PepnetProcess) -> str | None:
    """host:port of the process's metrics endpoint once it has said where it is."""
    match = METRICS_URL.search(process.text())
    return match.group(1) if match else None


def test_a_healthy_pipeline_raises_no_alert(pipeline_config: PipelineConfig, tmp_path: Path) -> None:
    healthy_s = longest_for_s() + 60  # every `for:` elapses, plus a minute of rule evaluations
    assert 60 < healthy_s <= 600, "keep the rules' for: durations modest, this test waits for them"
    topics = {role: {"name": t.name} for role, t in pipeline_config.kafka.topics.by_role().items()}
    config_path = tmp_path / "config.yaml"
    config_path.write_text(yaml.safe_dump({
        "kafka": {"bootstrap": pipeline_config.kafka.bootstrap, "topics": topics},
        # The demo's short join window: samples flow within a minute of simulated traffic.
        "joiner": {"window_ms": 30_000, "grace_ms": 5_000, "app_id": f"healthy-{tmp_path.name}"},
        "trainer": {"pass_samples": 2000},
        "monitoring": {"trainer_port": 0, "worker_port": 0},
    }))  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("PEPNET_")}
    common = ["--config", str(config_path)]
    run_dir = tmp_path / "run"
    prometheus = PrometheusServer(tmp_path / "prometheus", ["pepnet-trainer", "pepnet-worker"], SCRAPE_INTERVAL)
    processes = [
        PepnetProcess(["worker", *common], tmp_path / "worker.log", env),
        PepnetProcess(["train", *common, "--run-dir", str(run_dir)], tmp_path / "trainer.log", env),
        PepnetProcess(["simulate", *common, "--rate", "300", "--no-progress"], tmp_path / "simulator.log", env),
    ]
    worker, trainer, _ = processes

    def logs() -> str:
        return "\n".join(f"--- {p.log_path.name}:\n{p.text()[-3000:]}" for p in processes)

    def alive() -> None:
        for process in processes:
            assert process.running(), f"{process.log_path.name} exited\n{logs()}"

    try:
        started = time.time()
        deadline = time.monotonic() + FIRST_PASS_TIMEOUT_S
        targets: dict[str, str] = {}
        while not (run_dir / "passes.jsonl").is_file() or len(targets) < 2:
            assert time.monotonic() < deadline, f"no pass within {FIRST_PASS_TIMEOUT_S} s\n{logs()}"
            alive()
            for job, process in (("pepnet-worker", worker), ("pepnet-trainer", trainer)):
                address = metrics_address(process)
                if job not in targets and address:
                    targets[job] = address
                    prometheus.set_targets(job, [address])
            time.sleep(1)
        healthy_until = time.monotonic() + healthy_s
        while time.monotonic() < healthy_until:  # the run itself: alerts have every chance to fire
            alive()
            time.sleep(1)
        ended = time.time()

        firing = prometheus.query_range('ALERTS{alertstate="firing"}', started, ended, step="5s")
        assert firing == [], f"alerts fired on a healthy run: {[s['metric'] for s in firing]}\n{logs()}"
        for group in prometheus.api("rules")["groups"]:
            for rule in group["rules"]:
                assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
        down = prometheus.query_range('up{job=~"pepnet-.*"} == 0', started, ended, step="5s")
        assert down == [], f"scrapes failed: {down}"
        scraped = prometheus.query_range('up{job=~"pepnet-.*"}', started, ended, step="5s")
        assert {s["metric"]["job"] for s in scraped} == {"pepnet-trainer", "pepnet-worker"}
        # The model-quality rules had their inputs: AUCs, their noise and the logloss streaks.
        for series in ("pepnet_progressive_auc_stderr", "pepnet_progressive_logloss_rising_passes"):
            assert prometheus.query_range(series, started, ended, step="5s"), series
        passes = (run_dir / "passes.jsonl").read_text().count("\n")
        assert passes >= 10, f"only {passes} passes in {healthy_s:g} s\n{logs()}"
    finally:
        prometheus.stop()
        for process in reversed(processes):
            process.stop()
