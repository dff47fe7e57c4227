"""librdkafka's messages (verbatim, as librdkafka 2.16 writes them) -> one line per state change."""

from __future__ import annotations

import json
import logging

import pytest
from confluent_kafka import KafkaError

from stream.kafka.connection_log import ConnectionLog, classify

REFUSED = (
    "[thrd:127.0.0.1:19092/bootstrap]: 127.0.0.1:19092/bootstrap: Connect to ipv4#127.0.0.1:19092 failed: "
    "Connection refused (after 0ms in state CONNECT)"
)
SASL = (
    "[thrd:sasl_plaintext://127.0.0.1:55327/bootstrap]: sasl_plaintext://127.0.0.1:55327/bootstrap: SASL "
    "authentication error: Authentication failed: Invalid username or password (after 317ms in state AUTH_REQ)"
)
CLOSED = (
    "[thrd:127.0.0.1:19092/1]: 127.0.0.1:19092/1: Disconnected: connection closed by peer: receive 0 after "
    "POLLIN (after 7994ms in state UP)"
)
COORDINATOR = (
    "[thrd:GroupCoordinator]: GroupCoordinator: 127.0.0.1:19092: Connect to ipv4#127.0.0.1:19092 failed: "
    "Connection refused (after 0ms in state CONNECT)"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def stats(state: str) -> str:
    return json.dumps({"brokers": {"127.0.0.1:19092/1": {"state": state, "nodename": "127.0.0.1:19092"}}})


@pytest.fixture
def lines(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG, logger="test.kafka")
    return caplog


def watch(clock: Clock, username: str | None = None) -> ConnectionLog:
    return ConnectionLog("trainer consumer", "127.0.0.1:19092", logging.getLogger("test.kafka"), username,
                         remind_after_s=300, clock=clock)  # fmt: skip


def shown(caplog: pytest.LogCaptureFixture, level: int = logging.INFO) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= level]


@pytest.mark.parametrize(
    ("message", "code", "kind", "address", "reason"),
    [
        (REFUSED, None, "unreachable", "127.0.0.1:19092", "Connection refused"),
        (COORDINATOR, None, "unreachable", "127.0.0.1:19092", "Connection refused"),
        (SASL, None, "auth_failed", "127.0.0.1:55327", "Authentication failed: Invalid username or password"),
        (CLOSED, None, "disconnected", "127.0.0.1:19092", "receive 0 after POLLIN"),
        ("1/1 brokers are down", KafkaError._ALL_BROKERS_DOWN, "all_down", None, "no broker answers"),
        ("b:9093/bootstrap: SSL handshake failed: certificate verify failed (after 5ms in state SSL_HANDSHAKE)",
         KafkaError._SSL, "tls_failed", "b:9093", "certificate verify failed"),
        ("Topic t partition count changed", None, "other", None, "Topic t partition count changed"),
    ],
)  # fmt: skip
def test_classify(message: str, code: int | None, kind: str, address: str | None, reason: str) -> None:
    event = classify(message, code)
    assert (event.kind, event.address, event.reason) == (kind, address, reason)


def test_an_outage_is_one_line_when_it_starts_and_one_when_it_ends(lines: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = watch(clock)
    log.stats(stats("UP"))  # connected at start: nothing to say
    log.log(logging.WARNING, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", CLOSED)
    for _ in range(400):  # ~20 per second for 20 s, as librdkafka retries
        clock.now += 0.05
        log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", REFUSED)
        log.error(KafkaError(KafkaError._TRANSPORT, REFUSED))
        log.error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
        log.stats(stats("CONNECT"))
    log.log(logging.WARNING, "%s [%s] %s", "REQTMOUT", "rdkafka#consumer-1",
            "[thrd:GroupCoordinator]: GroupCoordinator: Timed out 0 in-flight, 0 retry-queued, 1 out-queue")
    clock.now += 36
    log.stats(stats("UP"))  # a broker that is starting may accept one connection and refuse the next
    log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", REFUSED)
    clock.now += 5
    log.stats(stats("UP"))
    log.stats(stats("UP"))  # recovered: two reports in a row
    log.stats(stats("UP"))
    assert shown(lines) == [
        "trainer consumer: broker 127.0.0.1:19092 unreachable (Connection refused), retrying",
        "trainer consumer: broker 127.0.0.1:19092 reachable again after 61 s",
    ]


def test_a_long_outage_is_reminded_every_remind_after_s(lines: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = watch(clock)
    for _ in range(700):  # one failure per second for 700 s
        log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", REFUSED)
        clock.now += 1
    messages = shown(lines)
    assert len(messages) == 3
    assert messages[1] == (
        "trainer consumer: still failing after 300 s: broker 127.0.0.1:19092 unreachable (Connection refused)"
    )


def test_a_wrong_password_is_named_as_an_authentication_failure(lines: pytest.LogCaptureFixture) -> None:
    log = watch(Clock(), username="alice")
    for _ in range(20):
        log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", SASL)
        log.error(KafkaError(KafkaError._AUTHENTICATION, SASL))
        log.error(KafkaError(KafkaError._ALL_BROKERS_DOWN, "1/1 brokers are down"))
    assert shown(lines) == [
        "trainer consumer: authentication failed for user alice at 127.0.0.1:55327 (Authentication failed: "
        "Invalid username or password); check kafka.client.sasl.username and sasl.password; retrying"
    ]
    assert log.state == "auth_failed" and "cannot reach" not in log.describe()


def test_other_lines_pass_at_their_level_at_most_once_a_minute(lines: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    log = watch(clock)
    for _ in range(30):
        log.log(logging.WARNING, "%s [%s] %s", "CONFWARN", "rdkafka#producer-1", "[thrd:app]: unused property x")
        log.log(logging.WARNING, "%s [%s] %s", "GETPID", "rdkafka#producer-1",
                "[thrd:main]: Failed to acquire idempotence PID from broker: Coordinator load in progress: retrying")
        clock.now += 1
    clock.now += 60
    log.log(logging.WARNING, "%s [%s] %s", "CONFWARN", "rdkafka#producer-1", "[thrd:app]: unused property x")
    assert shown(lines) == ["trainer consumer: librdkafka CONFWARN: [thrd:app]: unused property x"] * 2
    assert any("GETPID" in m for m in shown(lines, logging.DEBUG))


def test_quiet_records_the_state_and_writes_nothing(lines: pytest.LogCaptureFixture) -> None:
    log = ConnectionLog("probe", "b:1", logging.getLogger("test.kafka"), quiet=True)
    log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", REFUSED)
    assert log.state == "unreachable" and log.describe() == "broker 127.0.0.1:19092 unreachable (Connection refused)"
    assert not lines.records
