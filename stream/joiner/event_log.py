"""Write events to the joiner's input topics and read a whole topic back (tests, benchmarks).

Both use confluent-kafka directly: batched produce with the pipeline's producer settings, and
``consume(n)`` on an explicit assignment (no consumer group, nothing committed).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from confluent_kafka import KafkaException, TopicPartition

from stream.events.formats import Action, Impression, encode
from stream.kafka.clients import new_consumer, new_producer
from stream.kafka.config import KafkaConfig


@dataclass(frozen=True)
class ConsumedMessage:
    """One message read back from a topic."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    partition: int
    offset: int


class EventLogWriter:
    """Produces impressions and actions (keyed by user id) or raw bytes to the input topics."""

    def __init__(self, kafka: KafkaConfig) -> None:
        self.topics = kafka.topics
        self._producer = new_producer(kafka, name="event log producer")
        self.sent = 0

    def send_events(self, events: Iterable[Impression | Action]) -> int:
        """Produce each event to its topic; returns how many were sent."""
        count = 0
        for event in events:
            topic = self.topics.impressions.name if isinstance(event, Impression) else self.topics.actions.name
            self.send_raw(topic, event.key(), encode(event))
            count += 1
        return count

    def send_raw(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        """Produce one message as is (used to inject malformed input)."""
        while True:
            try:
                self._producer.produce(topic, value=value, key=key)
                break
            except BufferError:
                self._producer.poll(0.05)  # local queue full: let deliveries drain
        self.sent += 1
        if self.sent % 1000 == 0:
            self._producer.poll(0)

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every message is acknowledged (raises RuntimeError on timeout)."""
        left = self._producer.flush(timeout_s)
        if left:
            raise RuntimeError(f"{left} messages still undelivered after {timeout_s} s")


def end_offsets(kafka: KafkaConfig, topic: str, partitions: int) -> dict[int, int]:
    """High watermark of each partition of ``topic``."""
    consumer = new_consumer(kafka, "pepnet-offsets-probe", name="offsets probe")
    try:
        return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(partitions)}
    finally:
        consumer.close()


def read_topic(
    kafka: KafkaConfig,
    topic: str,
    partitions: int,
    expected: int | None = None,
    timeout_s: float = 60.0,
    settle_s: float = 2.0,
) -> list[ConsumedMessage]:
    """Every message of ``topic`` from the beginning.

    Stops when ``expected`` messages were read and nothing more arrived for ``settle_s`` seconds
    (so duplicates beyond ``expected`` are seen), or at ``timeout_s``. With ``expected`` None, reads
    up to the current end offsets.
    """
    consumer = new_consumer(
        kafka, "pepnet-topic-reader", name=f"{topic} reader", overrides={"enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out: list[ConsumedMessage] = []
    ends = end_offsets(kafka, topic, partitions) if expected is None else None
    target = sum(ends.values()) if ends is not None else expected
    deadline = time.monotonic() + timeout_s
    last_growth = time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = consumer.consume(5000, 0.2)
            for m in batch:
                if m.error():
                    raise KafkaException(m.error())
                out.append(ConsumedMessage(m.key(), m.value(), list(m.headers() or []), m.partition(), m.offset()))
            if batch:
                last_growth = time.monotonic()
            if (
                target is not None
                and len(out) >= target
                and time.monotonic() - last_growth >= (settle_s if ends is None else 0)
            ):
                break
    finally:
        consumer.close()
    return out
