"""Run one joiner worker: metrics endpoint, co-partitioning check, then the engine's loop."""

from __future__ import annotations

import gc
import logging
import signal
from collections.abc import Callable
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


def run_worker(config: PipelineConfig, log_level: str = "INFO", processes: int = 1) -> int:
    """Start one joiner worker (``joiner.engine``) and block until it is stopped (SIGINT/SIGTERM);
    with ``processes`` > 1, that many kafka-engine consume loops in one group (process_group)."""
    if processes < 1:
        raise UserError(f"--processes must be >= 1, got {processes}")
    if processes > 1 and config.joiner.engine != "kafka":
        raise UserError("--processes N needs the kafka engine (joiner.engine: kafka); run N faust workers instead")
    check_reachable(config.kafka)
    partitions = check_co_partitioned(config.kafka)
    if partitions != config.kafka.topics.impressions.partitions:
        raise UserError(
            f"topic {config.kafka.topics.impressions.name} has {partitions} partitions but "
            f"kafka.topics.impressions.partitions is {config.kafka.topics.impressions.partitions}"
        )
    joiner = config.joiner
    banner = (
        f"worker {joiner.app_id} ({joiner.engine} engine{f', {processes} processes' if processes > 1 else ''}): "
        f"{config.kafka.topics.impressions.name} + {config.kafka.topics.actions.name} -> "
        f"{getattr(config.kafka.topics, joiner.output).name}, window {joiner.window_ms} ms, grace {joiner.grace_ms} ms"
    )
    if processes > 1:
        from stream.joiner.process_group import run_process_group

        print(banner, flush=True)
        return run_process_group(config, processes, log_level)
    registry = CollectorRegistry()
    metrics = JoinerMetrics(registry, REASONS)
    server = None
    if config.monitoring.enabled:
        try:
            server = start_metrics_server(registry, config.monitoring.host, config.monitoring.worker_port)
        except OSError as e:
            raise UserError(f"{e.strerror}; set monitoring.worker_port (0 = any free port)") from None
        print(f"metrics: {server.url}", flush=True)
    print(banner, flush=True)
    try:
        if joiner.engine == "faust":
            return _run_faust(config, metrics, log_level)
        return run_consume_loop(config, metrics)
    finally:
        if server is not None:
            server.close()


def run_consume_loop(config: PipelineConfig, metrics: JoinerMetrics, ready: Callable[[], None] | None = None) -> int:
    """Run the kafka engine's consume loop until SIGINT/SIGTERM; returns the exit code.
    ``ready`` is called once the clients are built, before the loop joins the group."""
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
        if ready is not None:
            ready()
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
