"""Produce and consume throughput against a real broker: the project's client settings
(stream.kafka.client_config: linger, lz4, batched ``consume``) versus librdkafka's defaults with
per-message ``poll`` as the baseline (both built by stream.kafka.clients; the baseline resets
every setting our defaults change to librdkafka's own default), measured in the same run on the same topic layout.

    python benchmarks/kafka_throughput.py                 # starts a local broker on free ports
    python benchmarks/kafka_throughput.py --bootstrap 127.0.0.1:19092 --messages 500000

Prints messages/s and MB/s (payload bytes) for each side and the ratio ours / baseline.
"""

from __future__ import annotations

import argparse
import json
import random
import socket
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from confluent_kafka import Consumer

from stream.kafka.broker import LocalBroker
from stream.kafka.clients import new_consumer, new_producer
from stream.kafka.config import KafkaConfig, LocalBrokerConfig, TopicConfig, TopicsConfig
from stream.kafka.topics import create_topics

PARTITIONS = 4

# librdkafka's own defaults (CONFIGURATION.md) for every setting that PRODUCER_DEFAULTS and
# CONSUMER_DEFAULTS change: the baseline clients.
LIBRDKAFKA_PRODUCER_DEFAULTS: dict[str, Any] = {
    "linger.ms": 5,
    "batch.size": 1_000_000,
    "compression.type": "none",
    "acks": "all",
    "enable.idempotence": False,
    "queue.buffering.max.messages": 100_000,
}
LIBRDKAFKA_CONSUMER_DEFAULTS: dict[str, Any] = {
    "enable.auto.offset.store": True,
    "enable.partition.eof": False,
    "fetch.wait.max.ms": 500,
    "queued.min.messages": 100_000,
    "partition.assignment.strategy": "range,roundrobin",
}


@dataclass(frozen=True)
class Rate:
    messages: int
    payload_bytes: int
    seconds: float

    def line(self, label: str) -> str:
        return (
            f"{label:<34} {self.messages / self.seconds:>12,.0f} msg/s "
            f"{self.payload_bytes / self.seconds / 1e6:>8.1f} MB/s  ({self.seconds:.2f} s)"
        )


def impression_payloads(count: int, seed: int = 0) -> list[tuple[bytes, bytes]]:
    """Keyed JSON messages shaped like impressions (about 300 bytes each)."""
    rng = random.Random(seed)
    out = []
    for i in range(count):
        user = rng.randrange(100_000)
        value = {
            "impression_id": f"imp-{i}", "user_id": user, "item_id": rng.randrange(1_000_000),
            "author_id": rng.randrange(50_000), "domain": f"tab{rng.randrange(5)}",
            "event_time_ms": 1_700_000_000_000 + i, "sparse": {"tag": [rng.randrange(300) for _ in range(3)]},
            "dense": {"duration_s": rng.random() * 60, "play_ratio": rng.random()},
        }  # fmt: skip
        out.append((str(user).encode(), json.dumps(value).encode()))
    return out


def produce(kafka: KafkaConfig, overrides: dict[str, Any], topic: str, messages: list[tuple[bytes, bytes]]) -> Rate:
    producer = new_producer(kafka, name="benchmark producer", overrides=overrides)
    start = time.perf_counter()
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:  # local queue full: let deliveries drain
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(120)
    seconds = time.perf_counter() - start
    if remaining:
        raise RuntimeError(f"{remaining} messages were not delivered")
    return Rate(len(messages), sum(len(v) for _, v in messages), seconds)


def consume(
    kafka: KafkaConfig,
    group: str,
    overrides: dict[str, Any],
    topic: str,
    expected: int,
    read: Callable[[Consumer], list[Any]],
) -> Rate:
    consumer = new_consumer(kafka, group, name="benchmark consumer", overrides=overrides)
    consumer.subscribe([topic])
    count = payload = 0
    start = None
    deadline = time.monotonic() + 300
    try:
        while count < expected and time.monotonic() < deadline:
            for msg in read(consumer):
                if msg.error():
                    continue
                start = start or time.perf_counter()  # from the first message: excludes the group join
                count += 1
                payload += len(msg.value())
    finally:
        consumer.close()
    if count < expected or start is None:
        raise RuntimeError(f"consumed {count} of {expected} messages")
    return Rate(count, payload, time.perf_counter() - start)


def poll_one(consumer: Consumer) -> list[Any]:
    msg = consumer.poll(1.0)
    return [msg] if msg is not None else []


def consume_batch(consumer: Consumer) -> list[Any]:
    return consumer.consume(num_messages=1000, timeout=1.0)


def run(kafka: KafkaConfig, count: int) -> None:
    messages = impression_payloads(count)
    run_id = uuid.uuid4().hex[:8]
    names = {"baseline": f"bench.{run_id}.baseline", "ours": f"bench.{run_id}.ours"}
    # Reuse the pipeline's topic roles for creation: two topics of PARTITIONS partitions each.
    topics = TopicsConfig(
        impressions=TopicConfig(names["baseline"], PARTITIONS),
        actions=TopicConfig(names["ours"], PARTITIONS),
        samples=TopicConfig(f"bench.{run_id}.unused-samples", 1),
        samples_replay=TopicConfig(f"bench.{run_id}.unused-replay", 1),
        dead_letters=TopicConfig(f"bench.{run_id}.unused-dead", 1),
    )
    kafka = replace(kafka, topics=topics)
    create_topics(kafka)

    print(f"{count:,} messages of ~{sum(len(v) for _, v in messages) // count} B, {PARTITIONS} partitions")
    produce_base = produce(kafka, LIBRDKAFKA_PRODUCER_DEFAULTS, names["baseline"], messages)
    produce_ours = produce(kafka, {}, names["ours"], messages)
    consume_base = consume(kafka, f"bench-{run_id}-b", LIBRDKAFKA_CONSUMER_DEFAULTS, names["baseline"], count, poll_one)
    consume_ours = consume(kafka, f"bench-{run_id}-o", {}, names["ours"], count, consume_batch)

    print(produce_base.line("produce, librdkafka defaults"))
    print(produce_ours.line("produce, project defaults"))
    print(f"{'  ratio ours / baseline':<34} {produce_base.seconds / produce_ours.seconds:>12.2f}x")
    print(consume_base.line("consume, poll() per message"))
    print(consume_ours.line("consume, consume(1000) batches"))
    print(f"{'  ratio ours / baseline':<34} {consume_base.seconds / consume_ours.seconds:>12.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", default="", help="existing broker; default: start a local one")
    parser.add_argument("--messages", type=int, default=200_000)
    args = parser.parse_args()
    if args.bootstrap:
        run(KafkaConfig(bootstrap=args.bootstrap), args.messages)
        return
    with tempfile.TemporaryDirectory(prefix="pepnet-bench-kafka-") as data_dir:
        with socket.socket() as first, socket.socket() as second:  # both held: two distinct ports
            first.bind(("127.0.0.1", 0))
            second.bind(("127.0.0.1", 0))
            ports = [first.getsockname()[1], second.getsockname()[1]]
        config = LocalBrokerConfig(port=ports[0], controller_port=ports[1], data_dir=data_dir)
        broker = LocalBroker(config)
        started = broker.up()
        print(f"local broker ready in {started.state.ready_seconds:.1f} s")
        try:
            run(KafkaConfig(local_broker=config), args.messages)
        finally:
            broker.down()


if __name__ == "__main__":
    main()
