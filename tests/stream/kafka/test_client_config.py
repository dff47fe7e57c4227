"""librdkafka settings built from KafkaConfig."""

import pytest

from stream.kafka.client_config import admin_config, consumer_config, producer_config
from stream.kafka.config import KafkaConfig

SECURITY = {"security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN", "sasl.username": "u"}


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
