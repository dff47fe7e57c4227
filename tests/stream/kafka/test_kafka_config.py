"""Validation of the ``kafka`` configuration section."""

import pytest

from stream.config.pipeline import ConfigError, load_config
from stream.kafka.config import KafkaConfig, LocalBrokerConfig, TopicConfig, TopicsConfig


def test_defaults_name_topics_by_role_and_point_at_the_local_broker():
    config = KafkaConfig()
    names = {role: topic.name for role, topic in config.topics.by_role().items()}
    assert names["impressions"] == "pepnet.impressions"
    assert names["dead_letters"] == "pepnet.dead_letters"
    assert set(names) == {"impressions", "actions", "samples", "samples_replay", "dead_letters"}
    assert config.uses_local_broker
    assert config.bootstrap_servers == "127.0.0.1:19092"


def test_external_bootstrap_is_used_verbatim():
    config = KafkaConfig(bootstrap=" b1:9092,b2:9092 ", local_broker=LocalBrokerConfig(port=1234, controller_port=1235))
    assert not config.uses_local_broker
    assert config.bootstrap_servers == "b1:9092,b2:9092"


def test_shipped_yaml_matches_the_dataclass_defaults():
    assert load_config(environ={}).kafka == KafkaConfig()


@pytest.mark.parametrize(
    ("make", "prefix"),
    [
        (lambda: TopicConfig(partitions=0), "partitions must be > 0, got 0"),
        (lambda: TopicConfig(partitions=-3), "partitions must be > 0, got -3"),
        (lambda: TopicConfig(replication_factor=0), "replication_factor must be > 0"),
        (lambda: TopicConfig(name="has space"), "name must use only"),
        (lambda: TopicConfig(name="x" * 250), "name must use only"),
        (lambda: LocalBrokerConfig(port=0), "port must be in 1..65535, got 0"),
        (lambda: LocalBrokerConfig(controller_port=70000), "controller_port must be in 1..65535"),
        (lambda: LocalBrokerConfig(port=9000, controller_port=9000), "controller_port must differ"),
        (lambda: LocalBrokerConfig(heap_mb=64), "heap_mb must be >= 128"),
        (lambda: LocalBrokerConfig(startup_timeout_s=0), "startup_timeout_s must be > 0"),
        (lambda: LocalBrokerConfig(data_dir=""), "data_dir must not be empty"),
        (lambda: KafkaConfig(connect_timeout_s=-1), "connect_timeout_s must be > 0"),
        (lambda: KafkaConfig(client={"bootstrap.servers": "x:1"}), "client must not set bootstrap.servers"),
        (lambda: TopicsConfig(actions=TopicConfig(partitions=3)), "actions partitions must equal impressions"),
        (lambda: TopicsConfig(samples=TopicConfig(name="pepnet.actions")), "samples name 'pepnet.actions'"),
    ],
)
def test_impossible_values_raise_value_error_starting_with_the_field(make, prefix):
    with pytest.raises(ValueError) as raised:
        make()
    assert str(raised.value).startswith(prefix)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"topics": {"samples": {"partitions": -1}}}, "kafka.topics.samples.partitions: must be > 0, got -1"),
        ({"topics": {"actions": {"partitions": 2}}}, "kafka.topics.actions: partitions must equal impressions"),
        ({"local_broker": {"prot": 1}}, "kafka.local_broker.prot: unknown key"),
        ({"local_broker": {"port": "high"}}, "kafka.local_broker.port = 'high': expected an integer"),
        ({"client": {"security.protocol": [1]}}, "kafka.client.security.protocol = [1]: expected str | int"),
    ],
)
def test_loader_reports_the_full_key(overrides, message):
    with pytest.raises(ConfigError) as raised:
        load_config(overrides={"kafka": overrides}, environ={})
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)


def test_partial_topic_override_keeps_the_default_name():
    config = load_config(overrides={"kafka": {"topics": {"samples": {"partitions": 8}}}}, environ={})
    assert config.kafka.topics.samples.name == "pepnet.samples"
    assert config.kafka.topics.samples.partitions == 8


def test_environment_overrides_bootstrap_and_client_settings():
    config = load_config(
        environ={
            "PEPNET_KAFKA_BOOTSTRAP": "broker:9092",
            "PEPNET_KAFKA_CLIENT": "{security.protocol: SASL_SSL, sasl.mechanism: PLAIN}",
            "PEPNET_KAFKA_LOCAL_BROKER_PORT": "29092",
        }
    )
    assert config.kafka.bootstrap_servers == "broker:9092"
    assert config.kafka.client == {"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN"}
    assert config.kafka.local_broker.port == 29092
