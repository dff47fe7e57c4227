"""The one factory for librdkafka clients: every Consumer, Producer and AdminClient is built here.

Each client gets the settings of :mod:`stream.kafka.client_config` and a
:class:`~stream.kafka.connection_log.ConnectionLog` as its ``logger``, ``error_cb`` and
``stats_cb`` (the caller's own ``error_cb``/``stats_cb`` in ``overrides`` are still called), so
librdkafka never writes to the terminal and a broker outage is one line when it starts, one when
it ends ("reachable again after 61 s"), and a wrong SASL password is named as such. ``name`` says
which client a line is about ("trainer consumer").

:func:`check_reachable` is the start-up probe: one line on failure, naming an authentication or
TLS failure as such rather than "cannot reach Kafka". :func:`route_aiokafka_logs` does the same for
the faust engine's aiokafka clients, which log through Python's ``logging``.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from stream.config.errors import UserError
from stream.kafka.client_config import admin_config, consumer_config, producer_config
from stream.kafka.config import KafkaConfig
from stream.kafka.connection_log import ConnectionEvent, ConnectionLog, classify

_log = logging.getLogger("stream.kafka")
T = TypeVar("T")

# librdkafka statistics are how a client learns that a broker is reachable again; callers that
# feed lag metrics set their own interval.
STATS_INTERVAL_MS = 5000

# The reachability probe fails fast: the one-line error says it all.
_PROBE_SETTINGS: dict[str, Any] = {
    "reconnect.backoff.ms": 50,
    "reconnect.backoff.max.ms": 500,
    "socket.connection.setup.timeout.ms": 5_000,
}


def new_consumer(
    kafka: KafkaConfig, group_id: str, *, name: str, overrides: Mapping[str, Any] | None = None
) -> Consumer:
    """A ``confluent_kafka.Consumer`` in group ``group_id`` (settings: :func:`consumer_config`)."""
    settings, _ = _watched(consumer_config(kafka, group_id, overrides), kafka, name)
    return _built(Consumer, settings, kafka)


def new_producer(kafka: KafkaConfig, *, name: str, overrides: Mapping[str, Any] | None = None) -> Producer:
    """A ``confluent_kafka.Producer`` (settings: :func:`producer_config`)."""
    settings, _ = _watched(producer_config(kafka, overrides), kafka, name)
    return _built(Producer, settings, kafka)


def new_admin(kafka: KafkaConfig, *, name: str = "admin", overrides: Mapping[str, Any] | None = None) -> AdminClient:
    """A ``confluent_kafka.admin.AdminClient`` that retries connections quickly."""
    settings, _ = _watched(admin_config(kafka, {**_PROBE_SETTINGS, **(overrides or {})}), kafka, name)
    return _built(AdminClient, settings, kafka)


def check_reachable(kafka: KafkaConfig, timeout_s: float | None = None) -> int:
    """Ask the cluster for its metadata; returns the number of brokers that answered.

    Raises ``UserError`` (one line) when no broker answers within ``timeout_s`` seconds (default
    ``kafka.connect_timeout_s``), at once when the broker refuses the credentials or the TLS
    handshake.
    """
    timeout = kafka.connect_timeout_s if timeout_s is None else timeout_s
    settings, watch = _watched(admin_config(kafka, _PROBE_SETTINGS), kafka, "probe", quiet=True)
    admin = _built(AdminClient, settings, kafka)
    deadline = time.monotonic() + timeout
    while True:
        try:
            metadata = admin.list_topics(timeout=min(0.5, max(0.01, deadline - time.monotonic())))
            break
        except KafkaException as e:
            admin.poll(0)  # serves the queued log lines and errors into ``watch``
            if watch.state in ("auth_failed", "tls_failed"):
                raise UserError(watch.describe()) from None
            if time.monotonic() >= deadline:
                reason = watch.reason or kafka_error_text(e)
                raise UserError(unreachable_message(kafka, f"{reason} (waited {timeout:g} s)")) from None
    if not metadata.brokers:
        raise UserError(unreachable_message(kafka, "the cluster reported no brokers"))
    return len(metadata.brokers)


def unreachable_message(kafka: KafkaConfig, reason: str) -> str:
    """The one-line explanation shown when Kafka does not answer."""
    return (
        f"cannot reach Kafka at {kafka.bootstrap_servers}: {reason}; "
        "start one with `pepnet kafka up` or set kafka.bootstrap"
    )


def kafka_error_text(error: KafkaException) -> str:
    """librdkafka's human-readable reason inside a ``KafkaException``."""
    inner = error.args[0] if error.args else None
    return inner.str() if hasattr(inner, "str") else str(error)


def route_aiokafka_logs(kafka: KafkaConfig, name: str) -> ConnectionLog:
    """Send the ``aiokafka`` loggers' records (faust's Kafka clients) through a ConnectionLog:
    connection failures become state lines, the rest passes at its level. aiokafka reports no
    recovery, so the "reachable again" line is not available for it."""
    watch = ConnectionLog(name, kafka.bootstrap_servers, _log, _username(kafka.client))
    logger = logging.getLogger("aiokafka")
    for handler in [h for h in logger.handlers if isinstance(h, _AiokafkaHandler)]:
        logger.removeHandler(handler)
    logger.addHandler(_AiokafkaHandler(watch))
    logger.propagate = False
    return watch


class _AiokafkaHandler(logging.Handler):
    def __init__(self, watch: ConnectionLog) -> None:
        super().__init__()
        self.watch = watch

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.levelno >= logging.WARNING and text.startswith("Unable "):
            # 'Unable connect to "host:port": [Errno 111] ...', 'Unable to update metadata from [1]'
            reason = text.split(": ", 1)[1] if ": " in text else "no broker answers"
            self.watch.report(ConnectionEvent("unreachable", None, reason))
        elif record.levelno >= logging.WARNING and classify(text).kind in ("auth_failed", "tls_failed"):
            self.watch.report(classify(text))
        else:
            _log.getChild("aiokafka").handle(record)


def _built(client: Callable[[dict[str, Any]], T], settings: dict[str, Any], kafka: KafkaConfig) -> T:
    """``client(settings)``; a setting librdkafka refuses (unknown property, invalid value) is one
    line naming the config section it came from, not a traceback."""
    try:
        return client(settings)
    except KafkaException as error:
        inner = error.args[0] if error.args else None
        if getattr(inner, "code", lambda: None)() != KafkaError._INVALID_ARG:
            raise
        text = kafka_error_text(error)
        match = re.search(r'"([^"]+)"', text)
        name = match.group(1) if match else ""
        sections = [f"kafka.{s}" for s in ("client", "producer", "consumer") if name in getattr(kafka, s)]
        where = " or ".join(sections) or "kafka.client, kafka.producer or kafka.consumer"
        raise UserError(f"{where}: librdkafka refuses a setting: {text}; fix or remove it") from None


def _watched(
    settings: dict[str, Any], kafka: KafkaConfig, name: str, quiet: bool = False
) -> tuple[dict[str, Any], ConnectionLog]:
    """``settings`` with a ConnectionLog as logger, error_cb and stats_cb (chained to the caller's)."""
    watch = ConnectionLog(name, kafka.bootstrap_servers, _log, _username(settings), quiet=quiet)
    settings = dict(settings)
    settings["logger"] = watch
    settings["error_cb"] = _chain(watch.error, settings.get("error_cb"))
    settings["stats_cb"] = _chain(watch.stats, settings.get("stats_cb"))
    if not int(settings.get("statistics.interval.ms", 0) or 0):
        settings["statistics.interval.ms"] = STATS_INTERVAL_MS
    return settings, watch


def _chain(ours: Callable[[Any], None], theirs: Callable[[Any], object] | None) -> Callable[[Any], None]:
    if theirs is None:
        return ours

    def both(argument: Any) -> None:
        ours(argument)
        theirs(argument)

    return both


def _username(settings: Mapping[str, Any]) -> str | None:
    value = settings.get("sasl.username")
    return None if value is None else str(value)

