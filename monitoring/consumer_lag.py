"""Consumer lag per partition, read from librdkafka's statistics JSON (confluent-kafka `stats_cb`)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass

from prometheus_client import Gauge
from prometheus_client.registry import CollectorRegistry

# librdkafka reports the internal "unassigned" partition as -1 and an unknown lag as -1.
_INTERNAL_PARTITION = "-1"
_UNKNOWN_LAG = -1


@dataclass(frozen=True)
class PartitionLag:
    """Lag of one partition: messages between the consumer's position and the high watermark."""

    topic: str
    partition: int
    lag_messages: int


def parse_consumer_lag(stats_json: str) -> list[PartitionLag]:
    """The known `topics.<t>.partitions.<p>.consumer_lag` values of a librdkafka statistics JSON.

    Skips the internal partition -1 and partitions whose lag is unknown (-1: not assigned or no
    position yet). Raises ValueError on a payload that is not librdkafka statistics.
    """
    try:
        stats = json.loads(stats_json)
    except json.JSONDecodeError as error:
        raise ValueError(f"stats_json: not valid JSON: {error}") from error
    if not isinstance(stats, dict):
        raise ValueError(f"stats_json: expected a JSON object, got {type(stats).__name__}")
    lags: list[PartitionLag] = []
    for topic, topic_stats in (stats.get("topics") or {}).items():
        for partition, partition_stats in (topic_stats.get("partitions") or {}).items():
            lag = partition_stats.get("consumer_lag", _UNKNOWN_LAG)
            if partition == _INTERNAL_PARTITION or lag == _UNKNOWN_LAG:
                continue
            lags.append(PartitionLag(topic=topic, partition=int(partition), lag_messages=int(lag)))
    return lags


class ConsumerLagGauge:
    """`pepnet_consumer_lag_messages{topic, partition}`, replaced wholesale by each statistics report.

    Partitions missing from a report (revoked in a rebalance) are removed, so a partition another
    consumer now owns does not keep reporting a stale lag from this process.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.gauge = Gauge(
            "pepnet_consumer_lag_messages",
            "Messages between the consumer position and the high watermark, per partition.",
            ["topic", "partition"],
            registry=registry,
            # Several processes of one worker: a partition's lag is the value of its latest report
            # (its current owner's); a revoked partition's old value is not summed with it.
            multiprocess_mode="livemostrecent",
        )
        self._reported: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def update_from_stats(self, stats_json: str) -> int:
        """Feed one librdkafka statistics JSON (usable as `stats_cb`); returns the total lag in messages."""
        lags = parse_consumer_lag(stats_json)
        current = {(lag.topic, str(lag.partition)) for lag in lags}
        with self._lock:
            for labels in self._reported - current:
                self.gauge.remove(*labels)
            for lag in lags:
                self.gauge.labels(topic=lag.topic, partition=str(lag.partition)).set(lag.lag_messages)
            self._reported = current
        return sum(lag.lag_messages for lag in lags)
