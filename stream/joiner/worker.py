"""Run one joiner worker: metrics endpoint, co-partitioning check, then the faust worker loop."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry

from monitoring.joiner_metrics import JoinerMetrics
from monitoring.server import start_metrics_server
from stream.config import PipelineConfig
from stream.errors import UserError
from stream.kafka.client_config import check_reachable
from stream.kafka.topics import check_co_partitioned
from stream.validation import REASONS

_log = logging.getLogger(__name__)


def run_worker(config: PipelineConfig, log_level: str = "INFO") -> int:
    """Start one faust worker of the joiner and block until it is stopped (SIGINT/SIGTERM)."""
    import faust  # heavy import kept out of `pepnet --help`

    from stream.joiner.faust_app import JoinerApp

    check_reachable(config.kafka)
    partitions = check_co_partitioned(config.kafka)
    if partitions != config.kafka.topics.impressions.partitions:
        raise UserError(
            f"topic {config.kafka.topics.impressions.name} has {partitions} partitions but "
            f"kafka.topics.impressions.partitions is {config.kafka.topics.impressions.partitions}"
        )
    registry = CollectorRegistry()
    metrics = JoinerMetrics(registry, REASONS)
    server = None
    if config.monitoring.enabled:
        try:
            server = start_metrics_server(registry, config.monitoring.host, config.monitoring.worker_port)
        except OSError as e:
            raise UserError(f"{e.strerror}; set monitoring.worker_port (0 = any free port)") from None
        print(f"metrics: {server.url}", flush=True)
    joiner = JoinerApp(config.kafka, config.schema, config.joiner, metrics)
    print(
        f"worker {config.joiner.app_id}: {joiner.impressions_topic} + {joiner.actions_topic} -> "
        f"{joiner.samples_topic}, window {config.joiner.window_ms} ms, grace {config.joiner.grace_ms} ms",
        flush=True,
    )
    worker = faust.Worker(joiner.app, loglevel=log_level, quiet=True)
    # aiokafka logs every produced message at debug level: costly on the hot path.
    logging.getLogger("aiokafka").setLevel(max(logging.INFO, logging.getLevelName(log_level)))
    try:
        worker.execute_from_commandline()
    except SystemExit as e:
        return int(e.code or 0)
    finally:
        if server is not None:
            server.close()
    return 0
