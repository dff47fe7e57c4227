"""The consume loop's pure parts (its Kafka behaviour: test_consumer_loop_kafka.py)."""

from stream.joiner.consumer_loop import prefetch_settings
from stream.kafka.config import KafkaConfig


def test_prefetch_settings_fill_in_only_what_the_user_left_unset() -> None:
    assert prefetch_settings(KafkaConfig()) == {"queued.max.messages.kbytes": 16_384, "fetch.queue.backoff.ms": 10}
    mine = KafkaConfig(consumer={"fetch.queue.backoff.ms": 500})
    assert prefetch_settings(mine) == {"queued.max.messages.kbytes": 16_384}
