"""Prometheus metrics of the embedding table: memory against the budget, rows, evictions, admissions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial

from prometheus_client import Gauge
from prometheus_client.registry import CollectorRegistry

from monitoring.cumulative_counter import CumulativeCounter


class TableMetrics:
    """Metrics of one embedding table, refreshed from the table's own statistics after each pass.

    Exposed series:
        pepnet_table_bytes{component}: bytes held, by component (weights, optimizer, metadata, index...).
        pepnet_table_used_bytes: bytes the table accounts against its budget (what eviction compares).
        pepnet_table_budget_bytes: the configured byte budget.
        pepnet_table_rows{feature}: rows held, by feature.
        pepnet_table_evictions_total{reason}: rows removed since the table was created, by reason.
        pepnet_table_admissions_total: new ids given a row.
        pepnet_table_rejections_total{reason}: new ids refused a row, by reason (not seen often enough,
            probability, table full...).
        pepnet_table_shard_rows{shard}, pepnet_table_shard_used_bytes{shard},
        pepnet_table_shard_budget_bytes{shard}: the same per shard of a table sharded over N trainer
            processes (the series above are then the sums over the shards; one process: shard 0).
    """

    def __init__(
        self,
        registry: CollectorRegistry,
        eviction_reasons: Sequence[str] = (),
        rejection_reasons: Sequence[str] = (),
    ) -> None:
        """The given reasons are exported at 0 from the start, so rate() has data before the first one."""
        gauge = partial(Gauge, registry=registry)
        self.bytes = gauge("pepnet_table_bytes", "Bytes held by the embedding table, by component.", ["component"])
        self.used_bytes = gauge("pepnet_table_used_bytes", "Bytes the embedding table accounts against its budget.")
        self.budget_bytes = gauge("pepnet_table_budget_bytes", "Byte budget of the embedding table.")
        self.rows = gauge("pepnet_table_rows", "Rows held by the embedding table, by feature.", ["feature"])
        self.evictions = CumulativeCounter(
            "pepnet_table_evictions_total", "Rows removed from the embedding table, by reason.", ["reason"], registry
        )
        self.admissions = CumulativeCounter(
            "pepnet_table_admissions_total", "New ids given a row in the embedding table.", [], registry
        )
        self.rejections = CumulativeCounter(
            "pepnet_table_rejections_total", "New ids refused a row in the embedding table, by reason.", ["reason"],
            registry,
        )  # fmt: skip
        self.shard_rows = gauge("pepnet_table_shard_rows", "Rows held by one shard of the embedding table.", ["shard"])
        self.shard_used_bytes = gauge(
            "pepnet_table_shard_used_bytes", "Bytes one shard of the embedding table accounts against its budget.",
            ["shard"],
        )  # fmt: skip
        self.shard_budget_bytes = gauge(
            "pepnet_table_shard_budget_bytes", "Byte budget of one shard of the embedding table.", ["shard"]
        )
        self.evictions.set_by_label(dict.fromkeys(eviction_reasons, 0))
        self.rejections.set_by_label(dict.fromkeys(rejection_reasons, 0))
        self.admissions.set(0)

    def update(
        self,
        *,
        bytes_by_component: Mapping[str, int],
        used_bytes: int,
        budget_bytes: int,
        rows_by_feature: Mapping[str, int],
        evictions_by_reason: Mapping[str, int],
        admissions: int,
        rejections_by_reason: Mapping[str, int],
    ) -> None:
        """Refresh every series; counts (evictions, admissions, rejections) are cumulative since creation."""
        for component, value in bytes_by_component.items():
            self.bytes.labels(component=component).set(value)
        self.used_bytes.set(used_bytes)
        self.budget_bytes.set(budget_bytes)
        for feature, value in rows_by_feature.items():
            self.rows.labels(feature=feature).set(value)
        self.evictions.set_by_label(evictions_by_reason)
        self.admissions.set(admissions)
        self.rejections.set_by_label(rejections_by_reason)

    def update_shards(self, rows: Sequence[int], used_bytes: Sequence[int], budget_bytes: Sequence[int]) -> None:
        """Refresh the per-shard series from each shard's rows, used bytes and budget (by shard index)."""
        for shard, (n, used, budget) in enumerate(zip(rows, used_bytes, budget_bytes, strict=True)):
            self.shard_rows.labels(shard=str(shard)).set(n)
            self.shard_used_bytes.labels(shard=str(shard)).set(used)
            self.shard_budget_bytes.labels(shard=str(shard)).set(budget)
