"""The confluent-kafka engine's Kafka-facing parts against the real broker: the state topic, the
restore of state records, a revocation's hand-over, the order of state writes and offset commits,
and a worker that stops (exit 1, one line) when its output is refused."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import yaml
from confluent_kafka import Message, TopicPartition
from confluent_kafka.admin import ConfigResource
from prometheus_client import CollectorRegistry

from monitoring.joiner_metrics import JoinerMetrics
from stream.config.errors import UserError
from stream.config.pipeline import PipelineConfig
from stream.events.formats import Impression, encode
from stream.events.validation import REASONS
from stream.joiner.consumer_loop import JoinerConsumeLoop, ensure_changelog_topic, read_state
from stream.joiner.event_log import EventLogWriter
from stream.joiner.state import changelog_topic_name, encode_record, encode_state_key
from stream.kafka.clients import new_admin, new_producer
from stream.simulator import EventSimulator
from tests.waiting import wait_until

pytestmark = pytest.mark.kafka


def test_state_topic_is_created_compacted_and_a_wrong_partition_count_is_refused(
    pipeline_config: PipelineConfig,
) -> None:
    kafka = pipeline_config.kafka
    name = changelog_topic_name(kafka.topics.impressions.name + ".app")
    ensure_changelog_topic(kafka, name, 4)
    ensure_changelog_topic(kafka, name, 4)  # idempotent
    admin = new_admin(kafka)
    assert len(admin.list_topics(name, timeout=10).topics[name].partitions) == 4
    resource = ConfigResource(ConfigResource.Type.TOPIC, name)
    configs = admin.describe_configs([resource])[resource].result()
    assert configs["cleanup.policy"].value == "compact"
    with pytest.raises(UserError, match=f"state topic {name} has 4 partitions but the inputs have 8"):
        ensure_changelog_topic(kafka, name, 8)


def test_read_state_keeps_each_key_s_last_value_and_applies_tombstones(pipeline_config: PipelineConfig) -> None:
    kafka = pipeline_config.kafka
    name = changelog_topic_name(kafka.topics.impressions.name + ".restore")
    ensure_changelog_topic(kafka, name, 4)
    producer = new_producer(kafka, name="test producer")
    writes = [
        (1, "1:i:a", {"v": 1}), (1, "1:i:b", {"v": 1}), (1, "1:i:a", {"v": 2}), (1, "1:i:b", None),
        (2, "2:clock", {"v": 9}), (3, "3:i:c", {"v": 1}), (3, "3:i:c", None),
    ]  # fmt: skip
    for partition, key, record in writes:
        value = None if record is None else encode_record(record)
        producer.produce(name, value, encode_state_key(key), partition=partition)
    assert producer.flush(30) == 0
    state = read_state(kafka, name, [0, 1, 2, 3])
    # The records' bytes as written (a pending impression's JSON is kept as it was read).
    assert state == {0: [], 1: [("1:i:a", b'{"v":2}')], 2: [("2:clock", b'{"v":9}')], 3: []}
    assert read_state(kafka, name, []) == {}


def test_worker_stops_with_one_line_when_the_broker_refuses_its_samples(
    pipeline_config: PipelineConfig, pepnet_cli, tmp_path
) -> None:
    """The samples topic does not exist (auto-creation is off): no commit past the refused output."""
    kafka = pipeline_config.kafka
    simulator = EventSimulator(pipeline_config.simulator, pipeline_config.schema)
    writer = EventLogWriter(kafka)
    writer.send_events(simulator.events(300))
    writer.flush()
    topics = {role: {"name": t.name} for role, t in kafka.topics.by_role().items()}
    topics["samples"] = {"name": kafka.topics.impressions.name + ".missing"}
    config = {
        "kafka": {"bootstrap": kafka.bootstrap, "topics": topics, "producer": {"message.timeout.ms": 3000}},
        "joiner": {"app_id": kafka.topics.impressions.name + ".refused", "window_ms": 1000, "grace_ms": 100},
        "monitoring": {"enabled": False},
    }
    path = tmp_path / "refused.yaml"
    path.write_text(yaml.safe_dump(config))
    result = pepnet_cli("worker", "--config", str(path), timeout=90)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert f"delivery to {topics['samples']['name']} failed" in last and "restart it" in last


def test_messages_of_a_partition_revoked_meanwhile_are_not_joined(pipeline_config: PipelineConfig) -> None:
    """consume() can return messages fetched before a revocation it served in the same call
    (confluent-kafka-python#1013). Joined, they would restore the partition's state here and emit
    samples its new owner emits too; they are skipped, and their offsets are not committed by us."""
    kafka = pipeline_config.kafka
    joiner = replace(pipeline_config.joiner, app_id=kafka.topics.impressions.name + ".revoked")
    loop = JoinerConsumeLoop(kafka, pipeline_config.schema, joiner, JoinerMetrics(CollectorRegistry(), REASONS))
    impressions, actions = kafka.topics.impressions.name, kafka.topics.actions.name
    try:
        ensure_changelog_topic(kafka, loop.changelog_topic, loop.partitions)
        loop._on_assign(loop.consumer, [TopicPartition(t, p) for t in (impressions, actions) for p in (0, 1)])
        loop._on_revoke(loop.consumer, [TopicPartition(impressions, 1), TopicPartition(actions, 1)])
        simulator = EventSimulator(pipeline_config.simulator, pipeline_config.schema)
        first, second = [e for e in simulator.events(20) if isinstance(e, Impression)][:2]

        def message(partition: int, impression: Impression) -> Message:
            return Message(topic=impressions, partition=partition, offset=0, key=impression.key(),
                           value=encode(impression), timestamp=(1, impression.event_time_ms))  # fmt: skip

        loop._apply_batch([message(1, first), message(0, second)])  # partition 1 was revoked
        assert sorted(loop.processor.joiners) == [0]
        assert loop.processor.joiners[0].pending_count == 1
        assert (impressions, 1) not in loop._positions and loop._positions[(impressions, 0)] == 1
    finally:
        loop.consumer.close()
        loop.producer.flush(10)


def test_offsets_are_committed_one_commit_after_the_state_that_holds_them(pipeline_config: PipelineConfig) -> None:
    """A periodic commit writes the state and saves the offsets read so far; the offsets are
    committed by the next one, after a flush proves that state acknowledged: the committed offsets
    never run ahead of the state in the changelog."""
    kafka = pipeline_config.kafka
    joiner = replace(pipeline_config.joiner, app_id=kafka.topics.impressions.name + ".pipelined")
    loop = JoinerConsumeLoop(kafka, pipeline_config.schema, joiner, JoinerMetrics(CollectorRegistry(), REASONS))
    impressions, actions = kafka.topics.impressions.name, kafka.topics.actions.name
    simulator = EventSimulator(pipeline_config.simulator, pipeline_config.schema)
    batch = [
        Message(
            topic=impressions, partition=0, offset=offset, key=e.key(), value=encode(e), timestamp=(1, e.event_time_ms)
        )  # fmt: skip
        for offset, e in enumerate(e for e in simulator.events(40) if isinstance(e, Impression))
    ]
    partition = TopicPartition(impressions, 0)

    def committed() -> int:
        return loop.consumer.committed([partition], timeout=30)[0].offset

    def written_offset() -> int:
        records = dict(read_state(kafka, loop.changelog_topic, [0])[0])
        return json.loads(records["0:clock"])["impressions_offset"] if "0:clock" in records else -1

    try:
        ensure_changelog_topic(kafka, loop.changelog_topic, loop.partitions)
        loop._on_assign(loop.consumer, [TopicPartition(t, 0) for t in (impressions, actions)])
        loop._apply_batch(batch[:10])
        loop._commit()  # writes the state at offset 9, commits nothing yet
        assert committed() < 0
        loop.producer.flush(30)
        assert written_offset() == 9
        loop._apply_batch(batch[10:])
        loop._commit()  # the state at 9 is acknowledged: commits 10; writes the state at the end
        wait_until(lambda: committed() == 10, "offset 10 is committed (an asynchronous commit)", 60)
        loop.producer.flush(30)
        assert written_offset() == len(batch) - 1
        loop._commit_all()  # a revocation or a stop: everything, awaited
        assert committed() == len(batch)
    finally:
        loop.consumer.close()
        loop.producer.flush(10)
