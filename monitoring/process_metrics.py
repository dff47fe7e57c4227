"""Process-level metrics (memory, CPU, file descriptors, Python version) on an explicit registry."""

from __future__ import annotations

from prometheus_client import PlatformCollector, ProcessCollector
from prometheus_client.registry import CollectorRegistry


def register_process_metrics(registry: CollectorRegistry) -> None:
    """Register `process_*` (resident memory bytes, CPU seconds, ...) and `python_info` on `registry`.

    Idempotent: a registry that already has them is left as it is.
    """
    for collector_type in (ProcessCollector, PlatformCollector):
        try:
            collector_type(registry=registry)
        except ValueError:  # "Duplicated timeseries": registered before on this registry
            continue
