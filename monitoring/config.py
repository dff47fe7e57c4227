"""Configuration of the `monitoring:` section: where each process exposes its Prometheus metrics."""

from __future__ import annotations

from dataclasses import dataclass

_MAX_PORT = 65535


@dataclass
class MonitoringConfig:
    """Metrics endpoints of the pipeline's processes.

    Attributes:
        enabled: expose an HTTP metrics endpoint in the trainer and the workers.
        host: address the endpoints bind to (loopback by default; `0.0.0.0` in containers).
        trainer_port: TCP port of the trainer's endpoint (0 = any free port).
        worker_port: TCP port of a stream worker's endpoint (0 = any free port); running several
            workers on one host needs one port each (`PEPNET_MONITORING_WORKER_PORT`).
        kafka_stats_interval_ms: librdkafka `statistics.interval.ms` used to feed the
            consumer-lag gauge (ms of wall time; 0 disables lag reporting).
    """

    enabled: bool = True
    host: str = "127.0.0.1"
    trainer_port: int = 9400
    worker_port: int = 9401
    kafka_stats_interval_ms: int = 5000

    def __post_init__(self) -> None:
        if not self.host.strip():
            raise ValueError(f"host must be a non-empty address, got {self.host!r}")
        for name in ("trainer_port", "worker_port"):
            port = getattr(self, name)
            if not 0 <= port <= _MAX_PORT:
                raise ValueError(f"{name} must be in 0..{_MAX_PORT}, got {port}")
        if self.kafka_stats_interval_ms < 0:
            raise ValueError(f"kafka_stats_interval_ms must be >= 0 (0 disables), got {self.kafka_stats_interval_ms}")
