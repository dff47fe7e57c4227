"""Settings dicts for librdkafka clients (confluent-kafka) built from ``KafkaConfig``.

Clients are built from these by :mod:`stream.kafka.clients`, never directly. Order of
precedence, lowest first: our defaults for the client kind, ``kafka.client`` (security
settings shared by every client), ``kafka.producer`` / ``kafka.consumer``, then the caller's overrides.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stream.kafka.config import KafkaConfig

# Batch-friendly producer: wait up to 50 ms to fill batches, compress them, keep order on retry.
PRODUCER_DEFAULTS: dict[str, Any] = {
    "linger.ms": 50,
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    "acks": "all",
    "enable.idempotence": True,
    "queue.buffering.max.messages": 500_000,
}

# Batched reads with consume(n): prefetch generously; offsets are stored by the caller after
# processing (at-least-once), never automatically on delivery to the application.
CONSUMER_DEFAULTS: dict[str, Any] = {
    "auto.offset.reset": "earliest",
    "enable.auto.offset.store": False,
    "enable.partition.eof": False,
    "fetch.wait.max.ms": 100,
    "queued.min.messages": 100_000,
    "partition.assignment.strategy": "cooperative-sticky",
}

def _base(config: KafkaConfig) -> dict[str, Any]:
    return {"bootstrap.servers": config.bootstrap_servers, **config.client}


def producer_config(config: KafkaConfig, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Settings for ``confluent_kafka.Producer``; ``overrides`` use librdkafka's dotted names."""
    return {**PRODUCER_DEFAULTS, **_base(config), **config.producer, **(overrides or {})}


def consumer_config(config: KafkaConfig, group_id: str, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Settings for ``confluent_kafka.Consumer`` in consumer group ``group_id``."""
    if not group_id:
        raise ValueError("group_id must not be empty")
    settings = {**CONSUMER_DEFAULTS, **_base(config), **config.consumer, **(overrides or {})}
    settings["group.id"] = group_id
    return settings


def admin_config(config: KafkaConfig, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Settings for ``confluent_kafka.admin.AdminClient``."""
    return {**_base(config), **(overrides or {})}
