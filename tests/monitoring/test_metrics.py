"""Metric sets: the values exposed on an explicit registry follow what the components report."""

from __future__ import annotations

import json
import math

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest

from monitoring.cumulative_counter import CumulativeCounter
from monitoring.joiner_metrics import MAX_DEAD_LETTER_REASONS
from monitoring.metrics import (
    JoinerMetrics,
    TableMetrics,
    TrainerMetrics,
    parse_consumer_lag,
    register_process_metrics,
)
from tests.monitoring.test_run_log import make_record


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def table_update(table: TableMetrics, evictions: dict[str, int], used: int = 900) -> None:
    table.update(
        bytes_by_component={"weights": 600, "index": 300},
        used_bytes=used,
        budget_bytes=1000,
        rows_by_feature={"user_id": 10, "item_id": 20},
        evictions_by_reason=evictions,
        admissions=30,
        rejections_by_reason={"count": 5},
    )


def test_table_metrics_expose_the_table_statistics() -> None:
    registry = CollectorRegistry()
    table = TableMetrics(registry, eviction_reasons=["budget", "ttl"], rejection_reasons=["count"])
    assert value(registry, "pepnet_table_evictions_total", reason="budget") == 0
    assert value(registry, "pepnet_table_rejections_total", reason="count") == 0
    table_update(table, {"ttl": 4})
    assert value(registry, "pepnet_table_bytes", component="index") == 300
    assert value(registry, "pepnet_table_used_bytes") == 900
    assert value(registry, "pepnet_table_budget_bytes") == 1000
    assert value(registry, "pepnet_table_rows", feature="item_id") == 20
    assert value(registry, "pepnet_table_evictions_total", reason="ttl") == 4
    assert value(registry, "pepnet_table_admissions_total") == 30
    assert value(registry, "pepnet_table_rejections_total", reason="count") == 5
    # Cumulative counts are exposed as they are: no double counting across updates.
    table_update(table, {"ttl": 9})
    assert value(registry, "pepnet_table_evictions_total", reason="ttl") == 9
    assert b"# TYPE pepnet_table_evictions_total counter" in generate_latest(registry)


def test_cumulative_counter_checks_its_name_labels_and_sign() -> None:
    registry = CollectorRegistry()
    with pytest.raises(ValueError, match="_total"):
        CumulativeCounter("pepnet_rows", "doc", [], registry)
    counter = CumulativeCounter("pepnet_rows_total", "doc", ["reason"], registry)
    with pytest.raises(ValueError, match="labelvalues must have 1 values"):
        counter.set(1, ())
    with pytest.raises(ValueError, match="must be >= 0"):
        counter.set(-1, ("x",))
    counter.set(5, ("x",))
    counter.set(2, ("x",))  # the component was rebuilt: Prometheus sees a counter reset
    assert value(registry, "pepnet_rows_total", reason="x") == 2


def test_joiner_metrics_count_and_cap_dead_letter_reasons() -> None:
    registry = CollectorRegistry()
    joiner = JoinerMetrics(registry, dead_letter_reasons=["bad_json", "nan"])
    assert value(registry, "pepnet_dead_letters_total", reason="nan") == 0
    joiner.dead_letter("bad_json", 3)
    joiner.late_actions.inc(2)
    joiner.pending_impressions.set(17)
    assert value(registry, "pepnet_dead_letters_total", reason="bad_json") == 3
    assert value(registry, "pepnet_joiner_late_actions_total") == 2
    assert value(registry, "pepnet_joiner_pending_impressions") == 17
    for index in range(MAX_DEAD_LETTER_REASONS + 10):
        joiner.dead_letter(f"reason_{index}")
    reasons = {
        sample.labels["reason"]
        for metric in registry.collect()
        if metric.name == "pepnet_dead_letters"
        for sample in metric.samples
        if sample.name == "pepnet_dead_letters_total"
    }
    assert len(reasons) == MAX_DEAD_LETTER_REASONS + 1
    assert value(registry, "pepnet_dead_letters_total", reason="other") == 12


def test_trainer_metrics_publish_a_pass_and_count_significantly_rising_logloss() -> None:
    now = [1000.0]
    registry = CollectorRegistry()
    trainer = TrainerMetrics(registry, clock=lambda: now[0])
    assert value(registry, "pepnet_last_pass_completion_timestamp_seconds") == 1000
    assert value(registry, "pepnet_last_checkpoint_timestamp_seconds") == 1000
    streaks = []
    # Standard error 0.01 per pass: a rise counts beyond 2.5 * sqrt(2) * 0.01 = 0.035.
    for index, logloss in enumerate([0.50, 0.52, 0.56, 0.60, 0.65, 0.40, math.nan, 0.50]):
        now[0] += 60
        record = make_record(index, loss=0.5)
        record.logloss["click"], record.logloss_stderr["click"] = logloss, 0.01
        trainer.record_pass(record)
        streaks.append(value(registry, "pepnet_progressive_logloss_rising_passes", task="click"))
    assert streaks == [0, 0, 1, 2, 3, 0, 0, 0]  # +0.02 is noise, +0.04 and +0.05 are not
    assert value(registry, "pepnet_train_loss", task="click") == 0.5
    # AUC 0.7 on 100 positives of 1000 observed labels: Hanley-McNeil standard error ~0.030.
    assert value(registry, "pepnet_progressive_auc_stderr", task="click") == pytest.approx(0.0303, abs=1e-4)
    assert value(registry, "pepnet_progressive_positives", task="click") == 100
    assert value(registry, "pepnet_progressive_domain_auc", task="click", domain="tab1") == 0.69
    assert value(registry, "pepnet_progressive_logloss", task="like") == 0.09
    assert value(registry, "pepnet_trained_samples_total") == sum(1000 + i for i in range(8))
    assert value(registry, "pepnet_pass_index") == 7
    assert value(registry, "pepnet_pass_duration_seconds_count") == 8
    assert value(registry, "pepnet_last_pass_completion_timestamp_seconds") == 1480
    assert value(registry, "pepnet_trained_event_time_seconds") == 1_700_000_060
    trainer.record_checkpoint()
    assert value(registry, "pepnet_last_checkpoint_timestamp_seconds") == 1480
    trainer.record_dropped_duplicates(4)
    assert value(registry, "pepnet_dropped_duplicate_samples_total") == 4


def librdkafka_stats(partitions: dict[str, int], topic: str = "pepnet.samples") -> str:
    """A statistics payload shaped like librdkafka's (STATISTICS.md), trimmed to what matters."""
    return json.dumps(
        {
            "name": "rdkafka#consumer-1",
            "type": "consumer",
            "ts": 123,
            "topics": {
                topic: {
                    "topic": topic,
                    "partitions": {
                        **{
                            p: {"partition": int(p), "consumer_lag": lag, "hi_offset": 100, "app_offset": 100 - lag}
                            for p, lag in partitions.items()
                        },
                        "-1": {"partition": -1, "consumer_lag": -1},
                    },
                }
            },
        }
    )


def test_consumer_lag_follows_statistics_and_forgets_revoked_partitions() -> None:
    registry = CollectorRegistry()
    trainer = TrainerMetrics(registry)
    assert trainer.update_consumer_lag(librdkafka_stats({"0": 5, "1": 7, "2": -1})) == 12
    assert value(registry, "pepnet_consumer_lag_messages", topic="pepnet.samples", partition="1") == 7
    assert value(registry, "pepnet_consumer_lag_messages", topic="pepnet.samples", partition="2") is None
    assert value(registry, "pepnet_consumer_lag_messages", topic="pepnet.samples", partition="-1") is None
    trainer.update_consumer_lag(librdkafka_stats({"0": 3}))  # partition 1 revoked
    assert value(registry, "pepnet_consumer_lag_messages", topic="pepnet.samples", partition="0") == 3
    assert value(registry, "pepnet_consumer_lag_messages", topic="pepnet.samples", partition="1") is None


def test_joiner_metrics_export_assigned_partitions_and_their_consumer_lag() -> None:
    registry = CollectorRegistry()
    joiner = JoinerMetrics(registry)
    assert value(registry, "pepnet_joiner_assigned_partitions") == 0  # exported before the first assignment
    joiner.assigned_partitions.set(3)
    assert value(registry, "pepnet_joiner_assigned_partitions") == 3
    assert b"# TYPE pepnet_joiner_assigned_partitions gauge" in generate_latest(registry)
    # The kafka engine passes consumer_lag.update_from_stats to librdkafka as stats_cb.
    assert joiner.consumer_lag.update_from_stats(librdkafka_stats({"0": 40, "1": 2}, "pepnet.impressions")) == 42
    assert value(registry, "pepnet_consumer_lag_messages", topic="pepnet.impressions", partition="0") == 40
    joiner.consumer_lag.update_from_stats(librdkafka_stats({"1": 0}, "pepnet.impressions"))  # partition 0 revoked
    assert value(registry, "pepnet_consumer_lag_messages", topic="pepnet.impressions", partition="0") is None
    assert value(registry, "pepnet_consumer_lag_messages", topic="pepnet.impressions", partition="1") == 0


def test_trainer_and_joiner_metrics_live_in_registries_of_their_own() -> None:
    """Both export pepnet_consumer_lag_messages: one registry per process, as deployed."""
    trainer_registry, worker_registry = CollectorRegistry(), CollectorRegistry()
    TrainerMetrics(trainer_registry).update_consumer_lag(librdkafka_stats({"0": 5}))
    JoinerMetrics(worker_registry).consumer_lag.update_from_stats(librdkafka_stats({"0": 9}))
    assert value(trainer_registry, "pepnet_consumer_lag_messages", topic="pepnet.samples", partition="0") == 5
    assert value(worker_registry, "pepnet_consumer_lag_messages", topic="pepnet.samples", partition="0") == 9
    with pytest.raises(ValueError, match="Duplicated timeseries"):
        JoinerMetrics(trainer_registry)


def test_parse_consumer_lag_rejects_what_is_not_statistics() -> None:
    with pytest.raises(ValueError, match="stats_json: not valid JSON"):
        parse_consumer_lag("{")
    with pytest.raises(ValueError, match="stats_json: expected a JSON object"):
        parse_consumer_lag("[]")
    assert parse_consumer_lag(json.dumps({"type": "producer"})) == []


def test_process_metrics_report_this_process_memory() -> None:
    registry = CollectorRegistry()
    register_process_metrics(registry)
    register_process_metrics(registry)  # idempotent
    assert (value(registry, "process_resident_memory_bytes") or 0) > 10 * 1024 * 1024
    assert value(registry, "python_info", **_python_info_labels(registry)) == 1


def _python_info_labels(registry: CollectorRegistry) -> dict[str, str]:
    for metric in registry.collect():
        if metric.name == "python_info":
            return metric.samples[0].labels
    raise AssertionError("python_info missing")


def test_table_metrics_report_each_shard() -> None:
    registry = CollectorRegistry()
    table = TableMetrics(registry)
    table.update_shards([10, 12], [1000, 1100], [2048, 2048])
    assert registry.get_sample_value("pepnet_table_shard_rows", {"shard": "1"}) == 12
    assert registry.get_sample_value("pepnet_table_shard_used_bytes", {"shard": "0"}) == 1000
    assert registry.get_sample_value("pepnet_table_shard_budget_bytes", {"shard": "1"}) == 2048
