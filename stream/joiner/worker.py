"""Run one joiner worker: metrics endpoint, co-partitioning check, then the engine's loop."""

from __future__ import annotations

import gc
import logging
import signal
from types import FrameType

from prometheus_client import CollectorRegistry

from monitoring.joiner_metrics import JoinerMetrics
from monitoring.server import start_metrics_server
from stream.config.errors import UserError
from stream.config.pipeline import PipelineConfig
from stream.events.validation import REASONS
from stream.kafka.clients import check_reachable, route_aiokafka_logs
from stream.kafka.topics import check_co_partitioned

_log = logging.getLogger(__name__)


def run_worker(config: PipelineConfig, log_level: str = "INFO") -> int:
    """Start one joiner worker (``joiner.engine``) and block until it is stopped (SIGINT/SIGTERM)."""
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
    joiner = config.joiner
    print(
        f"worker {joiner.app_id} ({joiner.engine} engine): {config.kafka.topics.impressions.name} + "
        f"{config.kafka.topics.actions.name} -> {getattr(config.kafka.topics, joiner.output).name}, "
        f"window {joiner.window_ms} ms, grace {joiner.grace_ms} ms",
        flush=True,
    )
    try:
        if joiner.engine == "faust":
            return _run_faust(config, metrics, log_level)
        return _run_consume_loop(config, metrics)
    finally:
        if server is not None:
            server.close()


def _run_consume_loop(config: PipelineConfig, metrics: JoinerMetrics) -> int:
    from stream.joiner.consumer_loop import DeliveryFailed, JoinerConsumeLoop

    loop = JoinerConsumeLoop(config.kafka, config.schema, config.joiner, metrics)
    # Tens of thousands of pending impressions are long-lived objects that the cyclic collector
    # would rescan every 700 allocations: a young generation of 50,000 cut the CPU per event by
    # ~25% with 200k impressions in flight (benchmarks/README.md). The join creates no cycles.
    gc.set_threshold(50_000, 50, 100)

    def stop(signum: int, frame: FrameType | None) -> None:
        _log.info("%s: finishing the batch, committing, leaving the group", signal.Signals(signum).name)
        loop.stop()

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        loop.run()
    except DeliveryFailed as e:
        _log.error("%s", e)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


def _run_faust(config: PipelineConfig, metrics: JoinerMetrics, log_level: str) -> int:
    import faust  # heavy import kept out of `pepnet --help`

    from stream.joiner.faust_app import JoinerApp

    app = JoinerApp(config.kafka, config.schema, config.joiner, metrics)
    worker = faust.Worker(app.app, loglevel=log_level, quiet=True)
    # aiokafka logs every produced message at debug level: costly on the hot path.
    logging.getLogger("aiokafka").setLevel(max(logging.INFO, logging.getLevelName(log_level)))
    route_aiokafka_logs(config.kafka, f"joiner {config.joiner.app_id} (faust)")
    try:
        worker.execute_from_commandline()
    except SystemExit as e:
        return int(e.code or 0)
    return 0
