"""A real Prometheus scrapes a live short pipeline run: every PromQL expression of the dashboard and
of the rules returns data, every rule evaluates without error, and the run's report plots one point
per pass.

The expressions are read from deploy/prometheus/rules/*.yml and deploy/grafana/dashboards/*.json at
test time (monitoring.query_coverage), so the test follows any edit of the rules or the dashboard.

TARGET: `CliPipeline` runs `pepnet topics create`, `pepnet worker`, `pepnet simulate` and
`pepnet train` as separate processes (what `pepnet demo` strings together). Once `pepnet demo`
exists, switch `CliPipeline.start` to one `python -m stream.cli.main demo <short-run options>`
process with the same environment (PEPNET_KAFKA_BOOTSTRAP, PEPNET_MONITORING_TRAINER_PORT,
PEPNET_MONITORING_WORKER_PORT, PEPNET_RUN_DIR, ...) and `trainer_running` to "the demo is running";
the polling loop below already tolerates endpoints that come up late and go away at the end.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from monitoring.query_coverage import dashboard_expressions, data_queries, rule_expressions
from monitoring.report import render_run_report
from monitoring.run_log import read_pass_records
from tests.monitoring.cli_pipeline import CliPipeline
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


def test_every_dashboard_and_rule_expression_returns_data(kafka_broker: str, tmp_path: Path) -> None:
    queries = all_queries()
    assert len(queries) > 40
    trainer_port, worker_port = free_port(), free_port()
    pipeline = CliPipeline(kafka_broker, trainer_port, worker_port, tmp_path / "pipeline", impressions=6000)
    run_dir = pipeline.run_dir
    prometheus = PrometheusServer(
        tmp_path / "prometheus",
        {"pepnet-trainer": [f"127.0.0.1:{trainer_port}"], "pepnet-worker": [f"127.0.0.1:{worker_port}"]},
    )
    try:
        pipeline.start()
        missing = dict(queries)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        # Until training ends: afterwards the trainer's series go stale and instant queries miss them.
        while missing and time.monotonic() < deadline and pipeline.trainer_running():
            for query in list(missing):
                if prometheus.query(query):
                    del missing[query]
            time.sleep(1)
        report = "\n".join(f"  {source}: {query}" for query, source in sorted(missing.items(), key=lambda i: i[1]))
        assert not missing, f"no data for:\n{report}\n{pipeline.logs()}"

        for group in prometheus.api("rules")["groups"]:
            for rule in group["rules"]:
                assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
    finally:
        prometheus.stop()
        pipeline.stop()
    records = read_pass_records(run_dir)
    assert len(records) >= 2, pipeline.logs()
    for plot in render_run_report(run_dir):  # the run's report: one point per pass in every line
        assert plot.path.is_file()
        assert {len(line.get_xdata()) for axes in plot.figure.axes for line in axes.get_lines()} == {len(records)}
