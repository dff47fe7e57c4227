"""Grafana dashboard and provisioning: generated JSON is current, panels are well formed."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from monitoring.metrics import JoinerMetrics, TableMetrics, TrainerMetrics, register_process_metrics

REPO_ROOT = Path(__file__).resolve().parents[2]
GRAFANA_DIR = REPO_ROOT / "deploy" / "grafana"
DASHBOARD = GRAFANA_DIR / "dashboards" / "pepnet.json"


def load_generator():
    spec = importlib.util.spec_from_file_location("generate_dashboard", GRAFANA_DIR / "generate_dashboard.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up in sys.modules
    spec.loader.exec_module(module)
    return module


def test_committed_dashboard_equals_the_generator_output() -> None:
    assert DASHBOARD.read_text() == load_generator().render_dashboard(), (
        "run: python deploy/grafana/generate_dashboard.py"
    )


def test_panels_use_the_provisioned_datasource_and_do_not_overlap() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    datasource = yaml.safe_load((GRAFANA_DIR / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    panels = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels)
    cells: set[tuple[int, int]] = set()
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
        area = {
            (x, y) for x in range(grid["x"], grid["x"] + grid["w"]) for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not area & cells, f"panel {panel['title']!r} overlaps another"
        cells |= area
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == uid
            assert panel["targets"], panel["title"]
            assert all(target["datasource"]["uid"] == uid for target in panel["targets"])


def test_dashboard_shows_every_metric_family_we_export() -> None:
    """Each family is queried by a panel, directly or through a recording rule the panel uses.

    One registry per process, as deployed: the trainer's and a worker's metric sets both export
    pepnet_consumer_lag_messages, so they cannot share one; the families checked are the union.
    """
    trainer_registry = CollectorRegistry()
    TableMetrics(trainer_registry)
    TrainerMetrics(trainer_registry)
    register_process_metrics(trainer_registry)
    worker_registry = CollectorRegistry()
    JoinerMetrics(worker_registry)
    register_process_metrics(worker_registry)
    exported = {metric.name for registry in (trainer_registry, worker_registry) for metric in registry.collect()}
    families = exported - {"python_info"}
    assert "pepnet_joiner_assigned_partitions" in families
    shown = DASHBOARD.read_text() + (REPO_ROOT / "deploy" / "prometheus" / "rules" / "pepnet_recording.yml").read_text()
    missing = sorted(name for name in families if name.startswith("pepnet_") and name not in shown)
    assert not missing
    assert "process_resident_memory_bytes" in shown


def test_dashboard_provider_points_at_a_directory() -> None:
    provider = yaml.safe_load((GRAFANA_DIR / "provisioning" / "dashboards" / "pepnet.yml").read_text())
    assert provider["providers"][0]["options"]["path"].startswith("/")
