"""The metrics endpoint of a trainer process (one per rank of N, on ``trainer_port + local rank``).

Rank 0 (or the only process) exports everything: pass metrics, the whole table's statistics
(sums over the shards) and each shard's rows and bytes. The other ranks export the consumer lag
of their own partitions only, so summing ``pepnet_consumer_lag_messages`` over the trainer's
instances gives the lag of the topic, and no pass metric is ever reported twice.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry

from embedding_store.stats import TableStats
from monitoring.config import MonitoringConfig
from monitoring.consumer_lag import ConsumerLagGauge
from monitoring.run_log import PassRecord
from monitoring.server import MetricsServer, start_metrics_server
from monitoring.table_metrics import TableMetrics
from monitoring.trainer_metrics import TrainerMetrics
from stream.config.errors import UserError
from stream.trainer.manifest import PassManifest
from stream.trainer.rank_group import RankGroup


class TrainerMonitoring:
    """Metrics of one trainer process; nothing is served when ``config.enabled`` is false."""

    def __init__(self, config: MonitoringConfig, group: RankGroup) -> None:
        self.config = config
        self.group = group
        self.metrics: TrainerMetrics | None = None
        self.table_metrics: TableMetrics | None = None
        self.consumer_lag: ConsumerLagGauge | None = None
        self._server: MetricsServer | None = None

    def start(self) -> None:
        """Create the metrics and serve them on ``host:trainer_port + local rank`` (port 0: any)."""
        if not self.config.enabled:
            return
        registry = CollectorRegistry()
        if self.group.is_root:
            self.metrics = TrainerMetrics(registry)
            self.table_metrics = TableMetrics(registry)
            self.consumer_lag = self.metrics.consumer_lag
        else:
            self.consumer_lag = ConsumerLagGauge(registry)
        port = self.config.trainer_port + self.group.local_rank if self.config.trainer_port else 0
        try:
            self._server = start_metrics_server(registry, self.config.host, port)
        except OSError as error:
            raise UserError(
                f"trainer {error.strerror} (port {port}); set monitoring.trainer_port (0 = any free port; "
                "rank r of a machine uses trainer_port + r) or monitoring.enabled: false"
            ) from None

    @property
    def url(self) -> str | None:
        """Where the metrics are served (None when not serving)."""
        return self._server.url if self._server is not None else None

    def stop(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.close()
            self._server = None

    def lag_callback(self) -> Callable[[str], object] | None:
        """librdkafka ``stats_cb`` feeding the consumer-lag gauge (None when nothing is served)."""
        return self.consumer_lag.update_from_stats if self.consumer_lag is not None else None

    def record_checkpoint(self) -> None:
        """Note a checkpoint written now."""
        if self.metrics is not None:
            self.metrics.record_checkpoint()

    def publish(self, record: PassRecord, manifest: PassManifest, stats: TableStats, shards: list[TableStats]) -> None:
        """Update the metrics from a pass's record and the table's end-of-pass statistics: the whole
        table's, and each shard's (``shards``; none: the table is its only shard)."""
        if self.metrics is None or self.table_metrics is None:
            return
        self.metrics.record_pass(record)
        self.metrics.record_dropped_duplicates(manifest.duplicates)
        self.table_metrics.update(
            bytes_by_component=stats.bytes_by_component,
            used_bytes=stats.bytes_used,
            budget_bytes=stats.budget_bytes,
            rows_by_feature=stats.rows_per_feature,
            evictions_by_reason=stats.evictions,
            admissions=stats.admissions,
            rejections_by_reason=stats.rejections,
        )
        parts = shards or [stats]  # a table of one process is its only shard
        self.table_metrics.update_shards(
            [s.rows for s in parts], [s.bytes_used for s in parts], [s.budget_bytes for s in parts]
        )
