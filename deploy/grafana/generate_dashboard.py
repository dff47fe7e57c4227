"""Generates dashboards/pepnet.json, the Grafana dashboard of the pipeline.

Run `python deploy/grafana/generate_dashboard.py` after editing the panels below; a test checks the
committed JSON equals this script's output.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

DATASOURCE = {"type": "prometheus", "uid": "pepnet-prometheus"}
DASHBOARD_PATH = Path(__file__).resolve().parent / "dashboards" / "pepnet.json"
PANEL_WIDTH = 8
PANEL_HEIGHT = 8
PANELS_PER_ROW = 24 // PANEL_WIDTH


@dataclass
class Panel:
    """A time-series (or stat) panel: title, unit and (PromQL, legend) queries."""

    title: str
    unit: str
    queries: list[tuple[str, str]]
    kind: str = "timeseries"
    description: str = ""
    thresholds: list[tuple[float, str]] = field(default_factory=list)


ROWS: list[tuple[str, list[Panel]]] = [
    (
        "Embedding table",
        [
            Panel(
                "Table memory by component",
                "bytes",
                [
                    ("sum by (component) (pepnet_table_bytes)", "{{component}}"),
                    ("sum(pepnet_table_used_bytes)", "used (against budget)"),
                    ("sum(pepnet_table_budget_bytes)", "budget"),
                ],
                description="Bytes accounted by the embedding table (weights, optimizer state, metadata, index).",
            ),
            Panel(
                "Table memory / budget",
                "percentunit",
                [("instance:pepnet_table_bytes:ratio_budget", "{{instance}}")],
                thresholds=[(0.95, "red")],
                description="Alert PepnetTableNearBudget fires above 95% for 5 minutes.",
            ),
            Panel("Rows by feature", "short", [("sum by (feature) (pepnet_table_rows)", "{{feature}}")]),
            Panel(
                "Table shards: memory / budget",
                "percentunit",
                [("pepnet_table_shard_used_bytes / pepnet_table_shard_budget_bytes", "shard {{shard}}")],
                description="One shard per trainer rank (one for a single trainer process); each evicts on its own.",
            ),
            Panel("Rows by shard", "short", [("pepnet_table_shard_rows", "shard {{shard}}")]),
            Panel(
                "Evictions by reason",
                "rows/s",
                [("sum by (reason) (rate(pepnet_table_evictions_total[$__rate_interval]))", "{{reason}}")],
            ),
            Panel(
                "Admissions and rejections",
                "ids/s",
                [
                    ("sum(rate(pepnet_table_admissions_total[$__rate_interval]))", "admitted"),
                    (
                        "sum by (reason) (rate(pepnet_table_rejections_total[$__rate_interval]))",
                        "rejected: {{reason}}",
                    ),
                ],
                description="New ids given a row, and lookups of new ids not admitted yet.",
            ),
        ],
    ),
    (
        "Training",
        [
            Panel("Training loss by task", "short", [("pepnet_train_loss", "{{task}}")]),
            Panel(
                "Logloss rising streak",
                "short",
                [("pepnet_progressive_logloss_rising_passes", "{{task}}")],
                thresholds=[(3, "red")],
                description="Consecutive passes whose progressive logloss rose by more than 2.5 standard errors "
                "(alert at 3).",
            ),
            Panel("Progressive AUC by task", "short", [("pepnet_progressive_auc", "{{task}}")]),
            Panel(
                "Progressive AUC noise by task",
                "short",
                [("pepnet_progressive_auc_stderr", "{{task}}")],
                description="Standard error of each task's per-pass AUC (from its positives): the AUC alert "
                "fires on a drop of 4 of these (at least 0.02).",
            ),
            Panel(
                "Positives per pass by task",
                "short",
                [("pepnet_progressive_positives", "{{task}}")],
                description="Positive labels in the last pass: the sample size behind each task's AUC.",
            ),
            Panel(
                "Progressive AUC by task and domain",
                "short",
                [("pepnet_progressive_domain_auc", "{{task}} / {{domain}}")],
            ),
            Panel("Progressive logloss by task", "short", [("pepnet_progressive_logloss", "{{task}}")]),
            Panel(
                "Progressive logloss by task and domain",
                "short",
                [("pepnet_progressive_domain_logloss", "{{task}} / {{domain}}")],
            ),
            Panel(
                "Training throughput",
                "samples/s",
                [
                    ("job:pepnet_trained_samples:rate1m", "rate over 1m"),
                    ("pepnet_train_samples_per_second", "last pass {{instance}}"),
                ],
            ),
            Panel("Last completed pass", "short", [("max(pepnet_pass_index)", "pass")], kind="stat"),
            Panel(
                "Pass duration",
                "s",
                [
                    (
                        "histogram_quantile(0.9, sum by (le) "
                        "(rate(pepnet_pass_duration_seconds_bucket[$__rate_interval])))",
                        "p90",
                    ),
                    (
                        "sum(rate(pepnet_pass_duration_seconds_sum[$__rate_interval])) "
                        "/ sum(rate(pepnet_pass_duration_seconds_count[$__rate_interval]))",
                        "mean",
                    ),
                ],
            ),
            Panel(
                "Time since last pass and checkpoint",
                "s",
                [
                    ("instance:pepnet_time_since_last_pass_seconds", "since last pass {{instance}}"),
                    ("instance:pepnet_checkpoint_age_seconds", "checkpoint age {{instance}}"),
                ],
                description="Alerts: no pass for 15 minutes, checkpoint older than 30 minutes.",
            ),
            Panel(
                "Consumer lag by partition",
                "short",
                [
                    (
                        "sum by (job, topic, partition) (pepnet_consumer_lag_messages)",
                        "{{job}} {{topic}}/{{partition}}",
                    )
                ],
                description="Messages behind the high watermark, from librdkafka statistics: the trainer "
                "(pepnet-trainer) on the samples topic, joiner workers (pepnet-worker) on their input topics.",
            ),
            Panel(
                "Training data freshness",
                "s",
                [("time() - max(pepnet_trained_event_time_seconds)", "wall clock - newest event time trained")],
            ),
            Panel(
                "Samples skipped by the trainer",
                "samples/s",
                [
                    ("sum(rate(pepnet_dropped_duplicate_samples_total[$__rate_interval]))", "duplicates dropped"),
                    ("sum(rate(pepnet_invalid_samples_total[$__rate_interval]))", "invalid messages"),
                ],
            ),
        ],
    ),
    (
        "Joiner",
        [
            Panel("Pending impressions", "short", [("sum(pepnet_joiner_pending_impressions)", "pending")]),
            Panel(
                "Events read",
                "events/s",
                [
                    ("sum(rate(pepnet_joiner_impressions_consumed_total[$__rate_interval]))", "impressions"),
                    ("sum(rate(pepnet_joiner_actions_consumed_total[$__rate_interval]))", "actions"),
                    (
                        "sum(rate(pepnet_joiner_ahead_events_total[$__rate_interval]))",
                        "far ahead of their stream (wrong clocks)",
                    ),
                    ("sum(rate(pepnet_joiner_stream_time_jumps_total[$__rate_interval]))", "stream time jumps"),
                ],
            ),
            Panel(
                "Samples emitted",
                "samples/s",
                [
                    ("sum(rate(pepnet_joiner_samples_emitted_total[$__rate_interval]))", "joined"),
                    ("sum(rate(pepnet_joiner_prelabelled_samples_total[$__rate_interval]))", "pre-labelled"),
                    (
                        "sum(rate(pepnet_joiner_late_impressions_total[$__rate_interval]))",
                        "late impressions (unlabelled)",
                    ),
                ],
            ),
            Panel(
                "Actions by outcome",
                "actions/s",
                [
                    ("sum(rate(pepnet_joiner_joined_actions_total[$__rate_interval]))", "joined"),
                    ("sum(rate(pepnet_joiner_late_actions_total[$__rate_interval]))", "late"),
                    ("sum(rate(pepnet_joiner_orphan_actions_total[$__rate_interval]))", "orphan"),
                ],
            ),
            Panel(
                "Dead letters by reason",
                "events/s",
                [("sum by (reason) (rate(pepnet_dead_letters_total[$__rate_interval]))", "{{reason}}")],
            ),
            Panel(
                "Invalid share of input",
                "percentunit",
                [("job:pepnet_dead_letters:ratio5m", "{{job}}")],
                thresholds=[(0.05, "red")],
            ),
            Panel(
                "Joiner partitions per worker",
                "short",
                [("sum by (job, instance) (pepnet_joiner_assigned_partitions)", "{{job}} {{instance}}")],
                description="Input partition pairs (impressions + actions) each worker joins now. "
                "Alert PepnetJoinerNoPartitions fires when no worker of a job joins any for 5 minutes.",
            ),
            Panel(
                "Joiner consumer lag by topic",
                "short",
                [('job_topic:pepnet_consumer_lag_messages:sum{job="pepnet-worker"}', "{{topic}}")],
                description="Messages the workers are behind on their input topics (confluent-kafka engine only; "
                "joiner.loop.statistics_interval_ms).",
            ),
        ],
    ),
    (
        "Processes",
        [
            Panel(
                "Resident memory",
                "bytes",
                [('process_resident_memory_bytes{job=~"pepnet-.*"}', "{{job}} {{instance}}")],
            ),
            Panel(
                "CPU",
                "percentunit",
                [('rate(process_cpu_seconds_total{job=~"pepnet-.*"}[$__rate_interval])', "{{job}} {{instance}}")],
            ),
            Panel("Targets up", "short", [('up{job=~"pepnet-.*"}', "{{job}} {{instance}}")]),
        ],
    ),
]


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict:
    steps = [{"color": "green", "value": None}] + [
        {"color": color, "value": value} for value, color in panel.thresholds
    ]
    return {
        "id": panel_id,
        "type": panel.kind,
        "title": panel.title,
        "description": panel.description,
        "datasource": DATASOURCE,
        "gridPos": {"h": PANEL_HEIGHT, "w": PANEL_WIDTH, "x": x, "y": y},
        "fieldConfig": {
            "defaults": {"unit": panel.unit, "thresholds": {"mode": "absolute", "steps": steps}},
            "overrides": [],
        },
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": [
            {"datasource": DATASOURCE, "refId": chr(ord("A") + index), "expr": expr, "legendFormat": legend}
            for index, (expr, legend) in enumerate(panel.queries)
        ],
    }


def build_dashboard() -> dict:
    """The dashboard as a Grafana JSON model (rows of panels, 3 panels per line)."""
    panels: list[dict] = []
    y = 0
    for row_title, row_panels in ROWS:
        panels.append(
            {
                "id": len(panels) + 1,
                "type": "row",
                "title": row_title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        y += 1
        for index, panel in enumerate(row_panels):
            column = index % PANELS_PER_ROW
            panels.append(_panel_json(panel, len(panels) + 1, column * PANEL_WIDTH, y))
            if column == PANELS_PER_ROW - 1 or index == len(row_panels) - 1:
                y += PANEL_HEIGHT
    return {
        "uid": "pepnet-overview",
        "title": "PEPNet online training",
        "description": "Embedding table memory, training quality, throughput, lag and the joiner.",
        "tags": ["pepnet"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "panels": panels,
    }


def render_dashboard() -> str:
    """The dashboard JSON text exactly as committed."""
    return json.dumps(build_dashboard(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    DASHBOARD_PATH.write_text(render_dashboard(), encoding="utf-8")
    print(f"wrote {DASHBOARD_PATH}")
