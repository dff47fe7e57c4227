"""A real Prometheus scrapes a short real `pepnet demo` run: every PromQL expression of the dashboard
and of the rules returns data during the run, every rule evaluates without error, and the run's
per-pass plots have one point per pass.

The expressions are read from deploy/prometheus/rules/*.yml and deploy/grafana/dashboards/*.json at
test time (monitoring.query_coverage), so the test follows any edit of the rules or the dashboard.
Alert expressions are checked with their comparisons made `bool` (they return nothing while healthy).
Each query is evaluated over the whole run (query_range), so gauges that exist only between the
first pass and the end of training count as well.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from monitoring.query_coverage import dashboard_expressions, data_queries, rule_expressions
from monitoring.report import render_run_report
from monitoring.run_log import read_pass_records
from tests.monitoring.demo_run import DemoRun
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
    trainer_port = free_port()
    demo = DemoRun(kafka_broker, trainer_port, tmp_path / "demo")
    run_dir = demo.run_dir
    prometheus = PrometheusServer(tmp_path / "prometheus", ["pepnet-trainer", "pepnet-worker"])
    try:
        prometheus.set_targets("pepnet-trainer", [f"127.0.0.1:{trainer_port}"])
        started = time.time()
        # The demo holds the trainer's endpoint up after its summary, so a short run's final values
        # are scraped however loaded the machine is; it is stopped once every query has data.
        demo.start(impressions=8000, passes=4, pass_samples=1500, hold_metrics=True)
        worker = None
        missing: dict[str, str] = dict(queries)
        deadline = time.monotonic() + RUN_TIMEOUT_S
        while demo.running() and missing and time.monotonic() < deadline:
            if worker is None and (worker := demo.worker_address()):
                prometheus.set_targets("pepnet-worker", [worker])
            if demo.holding_metrics():
                ended = time.time()
                missing = {query: source for query, source in missing.items()
                           if not prometheus.query_range(query, started, ended)}  # fmt: skip
            time.sleep(0.5)
        assert demo.holding_metrics(), f"demo did not finish in {RUN_TIMEOUT_S} s:\n{demo.logs()}"
        report = "\n".join(f"  {source}: {query}" for query, source in sorted(missing.items(), key=lambda i: i[1]))
        assert not missing, f"no data during the run for:\n{report}\n{demo.logs()}"
        for group in prometheus.api("rules")["groups"]:
            for rule in group["rules"]:
                assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
    finally:
        prometheus.stop()
        demo.stop()
    records = read_pass_records(run_dir)
    assert len(records) == 4, demo.logs()
    # The demo reports each pass on exactly one line (the trainer's log line) before its table.
    assert re.findall(r"pass (\d+): ", demo.log_path.read_text()) == ["0", "1", "2", "3"], demo.logs()
    for plot in render_run_report(run_dir):  # the run's report: one point per pass in the per-pass plots
        assert plot.path.is_file()
        if plot.path.name in ("loss.png", "samples_per_s.png", "table_bytes.png", "consumer_lag.png"):
            lengths = {len(line.get_xdata()) for axes in plot.figure.axes for line in axes.get_lines()}
            assert lengths == {len(records)}, plot.path.name
