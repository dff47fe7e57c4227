"""Settings dicts for librdkafka clients (confluent-kafka) built from ``KafkaConfig``.

Order of precedence, lowest first: our defaults for the client kind, ``kafka.client`` (security
settings shared by every client), ``kafka.producer`` / ``kafka.consumer``, then the caller's overrides.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from stream.config.errors import UserError
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

# The reachability probe should fail fast and quietly: the one-line error says it all.
_PROBE_SETTINGS: dict[str, Any] = {
    "reconnect.backoff.ms": 50,
    "reconnect.backoff.max.ms": 500,
    "socket.connection.setup.timeout.ms": 5_000,
}
_SILENT_LOGGER = logging.getLogger("stream.kafka.probe")
_SILENT_LOGGER.addHandler(logging.NullHandler())
_SILENT_LOGGER.propagate = False


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


def quiet_admin_client(config: KafkaConfig) -> AdminClient:
    """An AdminClient that retries connections quickly and keeps librdkafka's log lines to itself."""
    return AdminClient({**admin_config(config), **_PROBE_SETTINGS, "logger": _SILENT_LOGGER})


def check_reachable(config: KafkaConfig, timeout_s: float | None = None) -> int:
    """Ask the cluster for its metadata; returns the number of brokers that answered.

    Raises ``UserError`` (one line) when no broker answers within ``timeout_s`` seconds
    (default ``kafka.connect_timeout_s``).
    """
    timeout = config.connect_timeout_s if timeout_s is None else timeout_s
    try:
        metadata = quiet_admin_client(config).list_topics(timeout=timeout)
    except KafkaException as e:
        raise UserError(unreachable_message(config, f"{kafka_error_text(e)} (waited {timeout:g} s)")) from None
    if not metadata.brokers:
        raise UserError(unreachable_message(config, "the cluster reported no brokers"))
    return len(metadata.brokers)


def unreachable_message(config: KafkaConfig, reason: str) -> str:
    """The one-line explanation shown when Kafka does not answer."""
    return (
        f"cannot reach Kafka at {config.bootstrap_servers}: {reason}; "
        "start one with `pepnet kafka up` or set kafka.bootstrap"
    )


def kafka_error_text(error: KafkaException) -> str:
    """librdkafka's human-readable reason inside a ``KafkaException``."""
    inner = error.args[0] if error.args else None
    return inner.str() if hasattr(inner, "str") else str(error)
