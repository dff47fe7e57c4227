"""Process-level metrics (memory, CPU, file descriptors, Python version) on an explicit registry."""

from __future__ import annotations

from prometheus_client import PlatformCollector, ProcessCollector
from prometheus_client.registry import CollectorRegistry


def register_process_metrics(registry: CollectorRegistry) -> None:
    """Register `process_*` (resident memory bytes, CPU seconds, ...) and `python_info` on `registry`.

    Call once per registry: registering twice raises ValueError (duplicated time series).
    """
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
