"""Real-broker round trip: `pepnet topics create`, then 10,000 keyed messages produced and read back."""

import json
import time
import uuid

import pytest

from stream.config.errors import UserError
from stream.config.pipeline import load_config
from stream.kafka.clients import new_consumer, new_producer
from stream.kafka.config import TopicsConfig
from stream.kafka.topics import check_co_partitioned, create_topics, describe_topics

pytestmark = pytest.mark.kafka

MESSAGES = 10_000
USERS = 997


def topic_env(kafka_broker: str, prefix: str) -> dict[str, str]:
    env = {"PEPNET_KAFKA_BOOTSTRAP": kafka_broker}
    for role in TopicsConfig().by_role():
        env[f"PEPNET_KAFKA_TOPICS_{role.upper()}_NAME"] = f"{prefix}.{role}"
    return env


def test_topics_create_then_keyed_messages_all_come_back(kafka_broker, pepnet_cli):
    started = time.monotonic()
    env = topic_env(kafka_broker, f"rt.{uuid.uuid4().hex[:10]}")
    created = pepnet_cli("topics", "create", env=env)
    assert created.returncode == 0, created.stderr
    assert created.stdout.count(" created") == 5, created.stdout
    again = pepnet_cli("topics", "create", env=env)
    assert again.returncode == 0 and again.stdout.count(" exists") == 5, again.stdout

    kafka = load_config(environ=env).kafka
    topic = kafka.topics.impressions.name
    assert {t.name: t.actual_partitions for t in describe_topics(kafka)}[topic] == 4

    producer = new_producer(kafka, name="test producer")
    partition_of_key: dict[str, set[int]] = {}

    def delivered(err, msg):
        assert err is None, err
        partition_of_key.setdefault(msg.key().decode(), set()).add(msg.partition())

    sent = {}
    for seq in range(MESSAGES):
        key = str(seq % USERS)
        value = {"seq": seq, "user_id": int(key), "payload": f"impression-{seq}"}
        sent[seq] = (key, value)
        producer.produce(topic, key=key, value=json.dumps(value).encode(), on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(30) == 0

    consumer = new_consumer(kafka, f"check-{uuid.uuid4().hex[:8]}", name="test consumer")
    consumer.subscribe([topic])
    received = []
    deadline = time.monotonic() + 60
    try:
        while len(received) < MESSAGES and time.monotonic() < deadline:
            for msg in consumer.consume(num_messages=2000, timeout=1.0):
                assert msg.error() is None, msg.error()
                received.append((msg.key().decode(), json.loads(msg.value()), msg.partition(), msg.offset()))
        # Nothing beyond the 10,000: a short extra read must come back empty.
        extra = consumer.consume(num_messages=10, timeout=1.0)
    finally:
        consumer.close()

    assert len(received) == MESSAGES and not extra
    assert sorted(value["seq"] for _, value, _, _ in received) == list(range(MESSAGES))
    for key, value, partition, _ in received:
        assert sent[value["seq"]] == (key, value)
        assert partition_of_key[key] == {partition}  # one key, one partition
    assert {partition for _, _, partition, _ in received} == {0, 1, 2, 3}
    # Per-key order survives the trip: sequence numbers of a key rise with the offsets.
    by_key: dict[str, list[tuple[int, int]]] = {}
    for key, value, _, offset in received:
        by_key.setdefault(key, []).append((offset, value["seq"]))
    for pairs in by_key.values():
        seqs = [seq for _, seq in sorted(pairs)]
        assert seqs == sorted(seqs)
    print(f"round trip of {MESSAGES} messages: {time.monotonic() - started:.2f} s")


def test_existing_topic_with_another_partition_count_is_refused(pipeline_config):
    kafka = pipeline_config.kafka
    assert check_co_partitioned(kafka) == kafka.topics.impressions.partitions
    wrong = load_config(
        overrides={"kafka": {
            "bootstrap": kafka.bootstrap,
            "topics": {
                **{role: {"name": t.name} for role, t in kafka.topics.by_role().items()},
                "impressions": {"name": kafka.topics.impressions.name, "partitions": 2},
                "actions": {"name": kafka.topics.actions.name, "partitions": 2},
            },
        }},
        environ={},
    ).kafka  # fmt: skip
    with pytest.raises(UserError) as raised:
        create_topics(wrong)
    assert str(raised.value) == (
        f"topic {kafka.topics.impressions.name} exists with 4 partitions but "
        "kafka.topics.impressions.partitions is 2; set the config to match or delete the topic"
    )
    # Nothing was changed: creating with the right config still finds everything in place.
    assert not any(outcome.created for outcome in create_topics(kafka))
