"""Write labelled samples to a topic the way the joiner does (key = user id, timestamp = event time).

Used to feed the trainer without the faust worker (tests, benchmarks, backfills of JSONL files).
"""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaException

from stream.config.errors import UserError
from stream.events.formats import LabelledSample, encode
from stream.kafka.clients import new_producer
from stream.kafka.config import KafkaConfig


def produce_samples(
    kafka: KafkaConfig, topic: str, samples: Iterable[LabelledSample], flush_timeout_s: float = 60
) -> int:
    """Produce every sample (message timestamp = its impression's event time, ms); returns the count."""
    producer = new_producer(kafka, name="sample producer")
    count = 0
    errors: list[str] = []

    def on_delivery(error, _message) -> None:  # noqa: ANN001 - librdkafka callback signature
        if error is not None:
            errors.append(str(error))

    try:
        for sample in samples:
            while True:
                try:
                    producer.produce(
                        topic, encode(sample), sample.key(),
                        timestamp=sample.impression.event_time_ms, on_delivery=on_delivery,
                    )  # fmt: skip
                    break
                except BufferError:
                    producer.poll(0.05)  # local queue full: let deliveries drain
            count += 1
            if count % 1000 == 0:
                producer.poll(0)
        remaining = producer.flush(flush_timeout_s)
    except KafkaException as error:
        raise UserError(f"producing samples to {topic} at {kafka.bootstrap_servers} failed: {error}") from None
    if remaining or errors:
        raise UserError(f"producing samples to {topic}: {remaining} undelivered, errors: {errors[:3]}")
    return count
