"""A real Prometheus scrapes a live pipeline run: every PromQL expression of the dashboard and of the
rules returns data, every rule evaluates without error.

The expressions are read from deploy/prometheus/rules/*.yml and deploy/grafana/dashboards/*.json at
test time (monitoring.query_coverage), so the test follows any edit of the rules or the dashboard.

TARGET: `live_pipeline.py` (real simulator, validator, joiner and IncrementalTrainer against the
real broker) stands in for `pepnet demo`. To switch to the demo once `stream/cli/demo.py` exists,
replace `start_target` by one that runs
    python -m stream.cli.main demo <short-run options>
with env PEPNET_KAFKA_BOOTSTRAP=<kafka_broker>, PEPNET_MONITORING_TRAINER_PORT=<trainer_port>,
PEPNET_MONITORING_WORKER_PORT=<worker_port>, PEPNET_RUN_DIR=<tmp run dir>, and waits for nothing
(the polling loop below already tolerates endpoints that come up late and go away at the end).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from monitoring.query_coverage import dashboard_expressions, data_queries, rule_expressions
from monitoring.report import render_run_report
from monitoring.run_log import read_pass_records
from tests.monitoring.prometheus_server import PROMETHEUS_BINARY, PROMETHEUS_DIR, REPO_ROOT, PrometheusServer, free_port

pytestmark = [
    pytest.mark.kafka,
    pytest.mark.prometheus,
    pytest.mark.skipif(not Path(PROMETHEUS_BINARY).exists(), reason="prometheus missing: apt-get install prometheus"),
]

DASHBOARDS = sorted((REPO_ROOT / "deploy" / "grafana" / "dashboards").glob("*.json"))
RULE_FILES = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))
# Grafana's $__rate_interval is at least 4 scrape intervals; 1m covers it with 1 s scrapes.
GRAFANA_VARIABLES = {"$__rate_interval": "1m"}
RUN_TIMEOUT_S = 300


def all_queries() -> dict[str, str]:
    """{query: where its expression comes from} for every rule and dashboard expression."""
    sourced = rule_expressions(RULE_FILES)
    for dashboard in DASHBOARDS:
        sourced += dashboard_expressions(dashboard, GRAFANA_VARIABLES)
    return {query: expression.source for expression in sourced for query in data_queries(expression.expr)}


def start_target(bootstrap: str, trainer_port: int, worker_port: int, run_dir: Path, log: Path) -> subprocess.Popen:
    """The stand-in pipeline run (see the module docstring for switching to `pepnet demo`)."""
    return subprocess.Popen(
        [
            sys.executable, str(Path(__file__).with_name("live_pipeline.py")),
            "--bootstrap", bootstrap, "--trainer-port", str(trainer_port), "--worker-port", str(worker_port),
            "--run-dir", str(run_dir), "--impressions", "6000", "--pass-samples", "1000", "--linger-s", "60",
        ],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip


def test_every_dashboard_and_rule_expression_returns_data(kafka_broker: str, tmp_path: Path) -> None:
    queries = all_queries()
    assert len(queries) > 40
    trainer_port, worker_port = free_port(), free_port()
    run_dir = tmp_path / "run"
    target_log = tmp_path / "target.log"
    target = start_target(kafka_broker, trainer_port, worker_port, run_dir, target_log)
    prometheus = None
    try:
        prometheus = PrometheusServer(
            tmp_path / "prometheus",
            {"pepnet-trainer": [f"127.0.0.1:{trainer_port}"], "pepnet-worker": [f"127.0.0.1:{worker_port}"]},
        )
        missing = dict(queries)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while missing and time.monotonic() < deadline and target.poll() is None:
            for query in list(missing):
                if prometheus.query(query):
                    del missing[query]
            time.sleep(1)
        report = "\n".join(f"  {source}: {query}" for query, source in sorted(missing.items(), key=lambda i: i[1]))
        assert not missing, f"no data for:\n{report}\n--- target log:\n{target_log.read_text()[-3000:]}"

        for group in prometheus.api("rules")["groups"]:
            for rule in group["rules"]:
                assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
        assert {target["health"] for target in prometheus.api("targets")["activeTargets"]} <= {"up", "down"}
    finally:
        if prometheus is not None:
            prometheus.stop()
        target.terminate()
        target.wait(timeout=30)
    records = read_pass_records(run_dir)
    assert len(records) >= 2, target_log.read_text()[-3000:]
    for plot in render_run_report(run_dir):  # the run's report: one point per pass in every line
        assert plot.path.is_file()
        assert {len(line.get_xdata()) for axes in plot.figure.axes for line in axes.get_lines()} == {len(records)}
