"""Configuration of Kafka access and of the locally managed broker (YAML section ``kafka``)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

TOPIC_NAME_PREFIX = "pepnet."
# Characters Kafka accepts in a topic name (legal chars: [a-zA-Z0-9._-], at most 249).
_TOPIC_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
_MAX_TOPIC_NAME = 249


@dataclass
class TopicConfig:
    """One topic of the pipeline. An empty ``name`` means ``pepnet.<role>`` (role = key in ``topics``)."""

    name: str = ""
    partitions: int = 4
    replication_factor: int = 1
    # Topic-level settings passed to the broker untouched (e.g. retention.ms, cleanup.policy).
    settings: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name and (len(self.name) > _MAX_TOPIC_NAME or not set(self.name) <= _TOPIC_NAME_CHARS):
            raise ValueError(
                f"name must use only letters, digits, '.', '_', '-' (at most {_MAX_TOPIC_NAME}), got {self.name!r}"
            )
        if self.name in (".", ".."):
            raise ValueError(f"name cannot be {self.name!r}")
        if self.partitions <= 0:
            raise ValueError(f"partitions must be > 0, got {self.partitions}")
        if self.replication_factor <= 0:
            raise ValueError(f"replication_factor must be > 0, got {self.replication_factor}")


@dataclass
class TopicsConfig:
    """The pipeline's topics, by role. Impressions and actions are keyed by user id and must be
    co-partitioned (equal partition counts) so that one joiner task sees both sides of a user."""

    impressions: TopicConfig = field(default_factory=lambda: TopicConfig(partitions=4))
    actions: TopicConfig = field(default_factory=lambda: TopicConfig(partitions=4))
    samples: TopicConfig = field(default_factory=lambda: TopicConfig(partitions=4))
    # Second samples topic: a replay writes here so its output can be compared with the live one.
    samples_replay: TopicConfig = field(default_factory=lambda: TopicConfig(partitions=4))
    dead_letters: TopicConfig = field(default_factory=lambda: TopicConfig(partitions=1))

    def __post_init__(self) -> None:
        for role, topic in self.by_role().items():
            if not topic.name:
                topic.name = TOPIC_NAME_PREFIX + role
        if self.actions.partitions != self.impressions.partitions:
            raise ValueError(
                f"actions partitions must equal impressions partitions (co-partitioned by user id), "
                f"got {self.actions.partitions} and {self.impressions.partitions}"
            )
        seen: dict[str, str] = {}
        for role, topic in self.by_role().items():
            if topic.name in seen:
                raise ValueError(f"{role} name {topic.name!r} is already used by topics.{seen[topic.name]}")
            seen[topic.name] = role

    def by_role(self) -> dict[str, TopicConfig]:
        """Every topic keyed by its role (the field name), in declaration order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class LocalBrokerConfig:
    """The single-node KRaft broker that ``pepnet kafka up`` runs on this machine."""

    host: str = "127.0.0.1"
    port: int = 19092
    controller_port: int = 19093
    # Holds the KRaft log, server.properties, broker.log and broker.json (pid, ports).
    data_dir: str = ".pepnet/kafka"
    # Where Maven copies the broker jars; empty = ~/.cache/pepnet/kafka-jars/<digest of the pom>.
    jars_dir: str = ""
    heap_mb: int = 512
    startup_timeout_s: float = 60.0
    shutdown_timeout_s: float = 30.0
    java: str = "java"
    maven: str = "mvn"
    # Extra server.properties entries (override the generated ones), e.g. log.retention.hours.
    properties: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("host must not be empty")
        for name in ("port", "controller_port"):
            value = getattr(self, name)
            if not 1 <= value <= 65535:
                raise ValueError(f"{name} must be in 1..65535, got {value}")
        if self.controller_port == self.port:
            raise ValueError(f"controller_port must differ from port, both are {self.port}")
        if not self.data_dir:
            raise ValueError("data_dir must not be empty")
        if self.heap_mb < 128:
            raise ValueError(f"heap_mb must be >= 128 (MiB), got {self.heap_mb}")
        for name in ("startup_timeout_s", "shutdown_timeout_s"):
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"{name} must be > 0 (seconds), got {value}")


# librdkafka takes strings, numbers and booleans (e.g. linger.ms: 5, enable.idempotence: true).
LibrdkafkaValue = str | int | float | bool


@dataclass
class KafkaConfig:
    """How every component reaches Kafka.

    ``bootstrap`` empty means the local managed broker (``local_broker.host:port``); otherwise it
    names an existing cluster and nothing is started. ``client`` is merged untouched into the
    settings of every librdkafka client (security.protocol, sasl.*, ssl.*...); ``producer`` and
    ``consumer`` are merged after the defaults of that client kind.
    """

    bootstrap: str = ""
    connect_timeout_s: float = 5.0
    local_broker: LocalBrokerConfig = field(default_factory=LocalBrokerConfig)
    topics: TopicsConfig = field(default_factory=TopicsConfig)
    client: dict[str, LibrdkafkaValue] = field(default_factory=dict)
    producer: dict[str, LibrdkafkaValue] = field(default_factory=dict)
    consumer: dict[str, LibrdkafkaValue] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.bootstrap = self.bootstrap.strip()
        if self.connect_timeout_s <= 0:
            raise ValueError(f"connect_timeout_s must be > 0 (seconds), got {self.connect_timeout_s}")
        for name in ("client", "producer", "consumer"):
            settings = getattr(self, name)
            if "bootstrap.servers" in settings:
                raise ValueError(f"{name} must not set bootstrap.servers; set kafka.bootstrap instead")

    @property
    def uses_local_broker(self) -> bool:
        """True when no external cluster is configured and the managed local broker is meant."""
        return not self.bootstrap

    @property
    def bootstrap_servers(self) -> str:
        """The ``bootstrap.servers`` string every client uses."""
        if self.bootstrap:
            return self.bootstrap
        return f"{self.local_broker.host}:{self.local_broker.port}"
