"""librdkafka settings built from KafkaConfig, and the one-line 'unreachable' error."""

import socket

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient

from stream.config.errors import UserError
from stream.kafka.client_config import admin_config, check_reachable, consumer_config, producer_config
from stream.kafka.config import KafkaConfig

SECURITY = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.username": "u"}


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


def test_client_settings_pass_through_untouched_to_every_client_kind():
    config = KafkaConfig(bootstrap="b:9092", client=SECURITY)
    for settings in (producer_config(config), consumer_config(config, "g"), admin_config(config)):
        assert settings["bootstrap.servers"] == "b:9092"
        assert {k: settings[k] for k in SECURITY} == SECURITY


def test_precedence_defaults_then_client_then_section_then_call():
    config = KafkaConfig(client={"linger.ms": "5"}, producer={"compression.type": "zstd"})
    settings = producer_config(config)
    assert settings["linger.ms"] == "5"
    assert settings["compression.type"] == "zstd"
    assert settings["enable.idempotence"] is True
    assert producer_config(config, {"linger.ms": 0})["linger.ms"] == 0


def test_consumer_defaults_store_offsets_explicitly():
    settings = consumer_config(KafkaConfig(consumer={"fetch.wait.max.ms": "10"}), "trainer")
    assert settings["group.id"] == "trainer"
    assert settings["enable.auto.offset.store"] is False
    assert settings["auto.offset.reset"] == "earliest"
    assert settings["fetch.wait.max.ms"] == "10"
    with pytest.raises(ValueError, match="^group_id must not be empty"):
        consumer_config(KafkaConfig(), "")


def test_librdkafka_accepts_every_default_setting():
    # librdkafka rejects unknown or ill-typed properties at construction, before any connection.
    config = KafkaConfig(bootstrap=f"127.0.0.1:{closed_port()}")
    quiet = {"log_level": 0}
    Producer(producer_config(config, quiet)).flush(0)
    Consumer(consumer_config(config, "g", quiet)).close()
    AdminClient(admin_config(config, quiet))


def test_unreachable_bootstrap_is_one_clear_line():
    config = KafkaConfig(bootstrap=f"127.0.0.1:{closed_port()}")
    with pytest.raises(UserError) as raised:
        check_reachable(config, timeout_s=0.5)
    message = str(raised.value)
    assert message.startswith(f"cannot reach Kafka at {config.bootstrap_servers}: ")
    assert "pepnet kafka up" in message and "kafka.bootstrap" in message
    assert "\n" not in message
