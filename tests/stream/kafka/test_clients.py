"""The client factory with real librdkafka clients: a closed port, a wrong SASL password and a
broker stopped and restarted under a connected consumer (a broker of the test's own)."""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator

import pytest
from confluent_kafka.admin import NewTopic

from stream.config.errors import UserError
from stream.kafka.clients import check_reachable, new_admin, new_consumer, new_producer
from stream.kafka.config import KafkaConfig
from tests.stream.kafka.own_broker import SASL_USER, OwnBroker, start_own_broker


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def kafka_lines(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="stream.kafka")  # DEBUG kept for failure messages
    return caplog


def shown(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("stream.kafka") and r.levelno >= logging.INFO]


def everything(caplog: pytest.LogCaptureFixture, last: int = 40) -> str:
    """The last ``last`` stream.kafka records at every level (librdkafka's own lines included)."""
    records = [r for r in caplog.records if r.name.startswith("stream.kafka")]
    return "\n".join(f"{r.levelname} {r.getMessage()}" for r in records[-last:])


def poll_until(client, condition, timeout_s: float) -> None:  # noqa: ANN001 - any librdkafka client
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        client.poll(0.2)


def test_librdkafka_accepts_every_default_setting() -> None:
    # librdkafka rejects unknown or ill-typed properties at construction, before any connection.
    config = KafkaConfig(bootstrap=f"127.0.0.1:{closed_port()}")
    new_producer(config, name="p").flush(0)
    new_consumer(config, "g", name="c").close()
    new_admin(config, name="a")


def test_a_closed_port_is_one_line_however_long_librdkafka_retries(kafka_lines: pytest.LogCaptureFixture) -> None:
    config = KafkaConfig(bootstrap=f"127.0.0.1:{closed_port()}")
    consumer = new_consumer(config, "g", name="test consumer", overrides={"reconnect.backoff.max.ms": 100})
    consumer.subscribe(["t"])
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:  # ~30 reconnect attempts
        consumer.poll(0.2)
    consumer.close()
    assert shown(kafka_lines) == [
        f"test consumer: broker {config.bootstrap_servers} unreachable (Connection refused), retrying"
    ]


def test_unreachable_bootstrap_is_one_clear_line() -> None:
    config = KafkaConfig(bootstrap=f"127.0.0.1:{closed_port()}")
    with pytest.raises(UserError) as raised:
        check_reachable(config, timeout_s=0.5)
    message = str(raised.value)
    assert message.startswith(f"cannot reach Kafka at {config.bootstrap_servers}: Connection refused (waited 0.5 s)")
    assert "pepnet kafka up" in message and "kafka.bootstrap" in message
    assert "\n" not in message


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnBroker]:
    broker = start_own_broker(tmp_path_factory.mktemp("own-kafka"))
    try:
        yield broker
    finally:
        broker.down()


@pytest.mark.kafka
def test_a_wrong_sasl_password_is_an_authentication_failure_not_unreachable(
    own_broker: OwnBroker, kafka_lines: pytest.LogCaptureFixture
) -> None:
    right = KafkaConfig(bootstrap=own_broker.sasl_bootstrap, client=own_broker.sasl_client())
    assert check_reachable(right, timeout_s=30) == 1
    wrong = KafkaConfig(
        bootstrap=own_broker.sasl_bootstrap, client=own_broker.sasl_client("wrong"), connect_timeout_s=30
    )
    with pytest.raises(UserError) as raised:
        check_reachable(wrong)
    message = str(raised.value)
    assert message.startswith(f"authentication failed for user {SASL_USER} at {own_broker.sasl_bootstrap} (")
    assert "check kafka.client.sasl.username and sasl.password" in message and "cannot reach" not in message

    consumer = new_consumer(wrong, "g", name="test consumer")
    consumer.subscribe(["t"])
    poll_until(consumer, lambda: False, 3)  # librdkafka retries the login every ~300 ms
    consumer.close()
    assert len(shown(kafka_lines)) == 1
    assert shown(kafka_lines)[0].startswith(f"test consumer: authentication failed for user {SASL_USER} at ")


@pytest.mark.kafka
def test_a_broker_outage_is_one_line_when_it_starts_and_one_when_it_ends(
    own_broker: OwnBroker, kafka_lines: pytest.LogCaptureFixture
) -> None:
    config = KafkaConfig(bootstrap=own_broker.bootstrap)
    admin = new_admin(config)
    admin.create_topics([NewTopic("outage", 2, 1)])["outage"].result(30)
    consumer = new_consumer(config, "outage-group", name="test consumer")
    consumer.subscribe(["outage"])
    poll_until(consumer, lambda: bool(consumer.assignment()), 60)
    assert consumer.assignment(), "the consumer never joined its group"
    own_broker.down()
    try:
        # Under a CPU hog the broker's shutdown and librdkafka's reconnects are slow: generous deadlines.
        poll_until(consumer, lambda: any("unreachable" in m for m in shown(kafka_lines)), 120)
        poll_until(consumer, lambda: False, 5)  # librdkafka keeps retrying: no more lines
    finally:
        own_broker.up()
    poll_until(consumer, lambda: any("reachable again" in m for m in shown(kafka_lines)), 120)
    consumer.close()
    messages = shown(kafka_lines)
    assert len(messages) == 2, f"{messages}\nevery stream.kafka line, newest last:\n{everything(kafka_lines)}"
    # The reason is librdkafka's: "Connection refused", or a reset if the broker went mid-request.
    assert messages[0].startswith(f"test consumer: broker {own_broker.bootstrap} unreachable ("), messages
    assert messages[0].endswith("), retrying"), messages
    assert messages[1].startswith(f"test consumer: broker {own_broker.bootstrap} reachable again after ")
