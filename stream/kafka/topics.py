"""Create and inspect the pipeline's topics through confluent-kafka's AdminClient."""

from __future__ import annotations

import time
from dataclasses import dataclass

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ClusterMetadata, NewTopic

from stream.config.errors import UserError
from stream.kafka.clients import check_reachable, kafka_error_text, new_admin, unreachable_message
from stream.kafka.config import KafkaConfig


@dataclass(frozen=True)
class TopicInfo:
    """A configured topic and what the cluster holds under its name."""

    role: str  # key under kafka.topics
    name: str
    configured_partitions: int
    actual_partitions: int | None  # None: the topic does not exist


@dataclass(frozen=True)
class TopicOutcome:
    """What ``create_topics`` did with one topic."""

    role: str
    name: str
    partitions: int
    created: bool  # False: it existed already with the configured partition count


def create_topics(config: KafkaConfig, timeout_s: float = 30.0) -> list[TopicOutcome]:
    """Create every configured topic that is missing; idempotent.

    An existing topic with the configured partition count is kept as it is; one with another
    count raises ``UserError`` before anything is created (repartitioning would move user keys).
    """
    check_reachable(config)
    admin = new_admin(config, name="topics admin")
    topics = describe_topics(config, admin=admin, timeout_s=timeout_s)
    mismatched = [t for t in topics if t.actual_partitions not in (None, t.configured_partitions)]
    if mismatched:
        t = mismatched[0]
        raise UserError(
            f"topic {t.name} exists with {t.actual_partitions} partitions but "
            f"kafka.topics.{t.role}.partitions is {t.configured_partitions}; "
            "set the config to match or delete the topic"
        )
    by_role = config.topics.by_role()
    missing = [t for t in topics if t.actual_partitions is None]
    new_topics = [
        NewTopic(
            t.name,
            num_partitions=by_role[t.role].partitions,
            replication_factor=by_role[t.role].replication_factor,
            config=dict(by_role[t.role].settings),
        )
        for t in missing
    ]
    created: set[str] = set()
    if new_topics:
        futures = admin.create_topics(new_topics, operation_timeout=timeout_s, request_timeout=timeout_s)
        for name, future in futures.items():
            try:
                future.result()
                created.add(name)
            except KafkaException as e:
                error = e.args[0]
                if error.code() != KafkaError.TOPIC_ALREADY_EXISTS:  # a concurrent create is fine
                    raise UserError(f"creating topic {name} failed: {kafka_error_text(e)}") from None
        wait_visible(admin, {t.name: t.configured_partitions for t in missing}, timeout_s)
    return [TopicOutcome(t.role, t.name, t.configured_partitions, t.name in created) for t in topics]


def describe_topics(
    config: KafkaConfig, admin: AdminClient | None = None, timeout_s: float | None = None
) -> list[TopicInfo]:
    """Each configured topic with its partition count on the cluster (None when missing).

    Waits at most ``timeout_s`` seconds for the metadata (default ``kafka.connect_timeout_s``).
    """
    admin = admin or new_admin(config, name="topics admin")
    metadata = _metadata(admin, config, config.connect_timeout_s if timeout_s is None else timeout_s)
    return [
        TopicInfo(role, topic.name, topic.partitions, _partition_count(metadata, topic.name))
        for role, topic in config.topics.by_role().items()
    ]


def check_co_partitioned(config: KafkaConfig, timeout_s: float | None = None) -> int:
    """Check on the cluster that impressions and actions exist with equal partition counts.

    Returns that count. The joiner relies on it: a user's impressions and actions must land in
    partitions with the same index.
    """
    topics = {t.role: t for t in describe_topics(config, timeout_s=timeout_s)}
    impressions, actions = topics["impressions"], topics["actions"]
    for t in (impressions, actions):
        if t.actual_partitions is None:
            raise UserError(f"topic {t.name} (kafka.topics.{t.role}) does not exist; run `pepnet topics create`")
    count = impressions.actual_partitions
    if count is None or actions.actual_partitions != count:
        raise UserError(
            f"topics {impressions.name} and {actions.name} are not co-partitioned: "
            f"{count} and {actions.actual_partitions} partitions"
        )
    return count


def _metadata(admin: AdminClient, config: KafkaConfig, timeout_s: float) -> ClusterMetadata:
    try:
        return admin.list_topics(timeout=timeout_s)
    except KafkaException as e:
        raise UserError(unreachable_message(config, f"{kafka_error_text(e)} (waited {timeout_s:g} s)")) from None


def _partition_count(metadata: ClusterMetadata, name: str) -> int | None:
    topic = metadata.topics.get(name)
    if topic is None or (topic.error is not None and topic.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
        return None
    return len(topic.partitions)


def wait_visible(admin: AdminClient, expected: dict[str, int], timeout_s: float) -> None:
    """Wait until the broker's metadata shows every new topic with all partitions led."""
    deadline = time.monotonic() + timeout_s
    while True:
        metadata = admin.list_topics(timeout=timeout_s)
        pending = [
            name
            for name, count in expected.items()
            if name not in metadata.topics
            or len(metadata.topics[name].partitions) != count
            or any(p.leader < 0 for p in metadata.topics[name].partitions.values())
        ]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise UserError(f"topics {', '.join(pending)} were created but have no leader after {timeout_s:g} s")
        time.sleep(0.1)
