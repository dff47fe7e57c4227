"""librdkafka's connection chatter turned into one log line per change of a client's state.

librdkafka reports a broker it cannot reach once per reconnect attempt (a ``FAIL`` log line and a
``_TRANSPORT`` error, ~20 per second during an outage) and never says when it is back. A
:class:`ConnectionLog` receives all three of a client's callbacks (``logger``, ``error_cb``,
``stats_cb``) and keeps one state per client:

``connecting`` -> ``up`` (a broker reported ``UP`` in the statistics) | ``unreachable`` |
``auth_failed`` | ``tls_failed``

It writes a line only when the state changes ("broker 127.0.0.1:19092 unreachable (Connection
refused), retrying" / "broker 127.0.0.1:19092 reachable again after 61 s" / "authentication failed
for user alice at ...") and, while a failure lasts, a reminder every ``remind_after_s``. Every
other librdkafka line is passed on at its level, the same (level, facility) at most once a minute;
lines that librdkafka retries by itself are demoted to DEBUG.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from confluent_kafka import KafkaError

# The first "host:port" in a librdkafka message, e.g. "sasl_ssl://b1:9093/1: Connect to ..." or
# "GroupCoordinator: 127.0.0.1:19092: Disconnected ...".
_ADDRESS = re.compile(r"(?:[a-z_]+://)?(\[[0-9a-fA-F:]+\]:\d+|[A-Za-z0-9_.-]+:\d+)")
_THREAD = re.compile(r"^\[thrd:[^\]]*\]:\s*")
_AFTER = re.compile(r"\s*\(after \d+ms in state (\w+)(?:, [^)]*)?\)\s*$")
_CONNECT_FAILED = re.compile(r"Connect to \S+ failed: (.*)$")
_SASL = re.compile(r"SASL authentication error: (.*)$")
_SSL = re.compile(r"SSL handshake failed: (.*)$")

_UNREACHABLE_CODES = {KafkaError._TRANSPORT, KafkaError._RESOLVE}
# Consecutive statistics reports with a broker UP before a failed client counts as recovered: a
# broker that is starting may accept a connection and refuse the next one.
_UP_REPORTS_TO_RECOVER = 2
_REPEAT_WINDOW_S = 60.0
_OUTAGE_ECHOES = frozenset({"REQTMOUT"})


@dataclass(frozen=True)
class ConnectionEvent:
    """What one librdkafka message says about the connection: ``kind`` is ``unreachable``,
    ``auth_failed``, ``tls_failed``, ``disconnected`` (a live connection closed), ``all_down``
    (librdkafka's summary "N/N brokers are down", which always follows one of the failures) or
    ``other``."""

    kind: str
    address: str | None
    reason: str


def classify(message: str, code: int | None = None) -> ConnectionEvent:
    """Read one librdkafka log or error message (``code``: the KafkaError code, if any)."""
    message = _THREAD.sub("", message)
    after = _AFTER.search(message)
    state = after.group(1) if after else None
    text = message[: after.start()] if after else message
    found = _ADDRESS.search(text)
    address = found.group(1) if found else None
    if code == KafkaError._AUTHENTICATION or _SASL.search(text):
        sasl = _SASL.search(text)
        return ConnectionEvent("auth_failed", address, sasl.group(1) if sasl else _tail(text))
    if code == KafkaError._SSL or _SSL.search(text):
        ssl = _SSL.search(text)
        return ConnectionEvent("tls_failed", address, ssl.group(1) if ssl else _tail(text))
    connect = _CONNECT_FAILED.search(text)
    if connect:
        return ConnectionEvent("unreachable", address, connect.group(1))
    if state == "UP":
        return ConnectionEvent("disconnected", address, _tail(text))
    if code == KafkaError._ALL_BROKERS_DOWN:
        return ConnectionEvent("all_down", None, "no broker answers")
    if code in _UNREACHABLE_CODES or (state is not None and code is None):
        return ConnectionEvent("unreachable", address, _tail(text))
    return ConnectionEvent("other", address, text)


def _tail(text: str) -> str:
    """The reason part of "<broker>: <reason>"."""
    return text.rsplit(": ", 1)[-1].strip() if ": " in text else text.strip()


class ConnectionLog:
    """Callbacks for one librdkafka client that log its connection state changes to ``logger``.

    ``name`` says which client (e.g. "trainer consumer"); ``bootstrap`` is named when a message
    names no broker; ``username`` is the configured ``sasl.username``. ``clock`` returns seconds.
    ``quiet`` records the state without writing anything (a probe whose caller reports the outcome).
    """

    def __init__(
        self,
        name: str,
        bootstrap: str,
        logger: logging.Logger,
        username: str | None = None,
        remind_after_s: float = 300.0,
        quiet: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.bootstrap = bootstrap
        self.logger = logger
        self.username = username
        self.remind_after_s = remind_after_s
        self.quiet = quiet
        self.clock = clock
        self.state = "connecting"
        self.address = bootstrap
        self.reason = ""
        self.since = clock()
        self._reminded = self.since
        self._last_repeat: dict[tuple[int, str], float] = {}
        self._up_reports = 0
        self._lock = threading.Lock()

    # -- the three librdkafka callbacks ------------------------------------------------------

    def log(self, level: int, fmt: str, *args: object) -> None:
        """confluent-kafka's ``logger`` interface: ``log(level, "%s [%s] %s", facility, client, text)``."""
        facility, text = (str(args[0]), str(args[2])) if len(args) == 3 else ("", fmt % args if args else fmt)
        if facility == "FAIL" or level >= logging.ERROR:
            event = classify(text)
            if event.kind != "other":
                self.report(event)
                return
        # Requests that timed out while the broker was away are part of the outage already reported.
        outage_echo = facility in _OUTAGE_ECHOES and self.state not in ("up", "connecting")
        if level >= logging.WARNING and not text.rstrip().endswith("retrying") and not outage_echo:
            self._repeat_limited(level, facility, text)
        else:
            self._emit(logging.DEBUG, "librdkafka %s: %s", facility, text)

    def error(self, error: KafkaError) -> None:
        """confluent-kafka's ``error_cb``."""
        event = classify(error.str(), error.code())
        if event.kind != "other":
            self.report(event)
        elif error.fatal():
            self._emit(logging.ERROR, "Kafka client %s failed: %s", self.name, error.str())
        else:
            self._repeat_limited(logging.WARNING, error.name(), error.str())

    def stats(self, stats_json: str) -> None:
        """confluent-kafka's ``stats_cb``: a broker in state ``UP`` means the client is connected."""
        try:
            brokers = json.loads(stats_json).get("brokers", {})
        except ValueError:
            return
        up = [b.get("nodename") or "" for b in brokers.values() if b.get("state") == "UP"]
        with self._lock:
            self._up_reports = self._up_reports + 1 if up else 0
            recovered = self.state == "connecting" or self._up_reports >= _UP_REPORTS_TO_RECOVER
        if up and recovered:
            self.connected(max(up) or None)

    # -- state -------------------------------------------------------------------------------

    def connected(self, address: str | None = None) -> None:
        """The client talks to a broker (also callable by code that just got an answer)."""
        with self._lock:
            previous, since = self.state, self.since
            if previous == "up":
                return
            self.state, self.since, self.reason = "up", self.clock(), ""
        if previous != "connecting":
            self._emit(
                logging.WARNING, "%s: broker %s reachable again after %.0f s",
                self.name, address or self.address, self.clock() - since,
            )  # fmt: skip

    def describe(self) -> str:
        """The current failure as one line (empty when connected or still connecting)."""
        if self.state == "unreachable":
            return f"broker {self.address} unreachable ({self.reason})"
        if self.state == "auth_failed":
            user = self.username if self.username is not None else "(no kafka.client.sasl.username)"
            return (
                f"authentication failed for user {user} at {self.address} ({self.reason}); "
                "check kafka.client.sasl.username and sasl.password"
            )
        if self.state == "tls_failed":
            return f"TLS handshake with {self.address} failed ({self.reason}); check kafka.client ssl.* settings"
        return ""

    def report(self, event: ConnectionEvent) -> None:
        """Apply one connection event (from :func:`classify` or another client library's log)."""
        if event.kind in ("disconnected", "all_down"):
            self._emit(logging.DEBUG, "%s: %s: %s", self.name, event.address or self.bootstrap, event.reason)
            return
        now = self.clock()
        with self._lock:
            # "1/1 brokers are down" follows every failed login too: it does not replace the reason.
            consequence = event.address is None and self.state in ("auth_failed", "tls_failed")
            changed = event.kind != self.state and not consequence
            self._up_reports = 0
            if changed:
                self.state, self.since, self._reminded = event.kind, now, now
                self.address = event.address or self.bootstrap
                self.reason = event.reason
            elif event.address and self.address == self.bootstrap and event.address != self.bootstrap:
                self.address = event.address
            remind = not changed and now - self._reminded >= self.remind_after_s
            if remind:
                self._reminded = now
            line, since = self.describe(), self.since
        if changed:
            retry = ", retrying" if event.kind == "unreachable" else "; retrying"
            self._emit(logging.ERROR if event.kind != "unreachable" else logging.WARNING,
                       "%s: %s%s", self.name, line, retry)  # fmt: skip
        elif remind:
            self._emit(logging.WARNING, "%s: still failing after %.0f s: %s", self.name, now - since, line)

    def _repeat_limited(self, level: int, facility: str, text: str) -> None:
        now = self.clock()
        key = (level, facility)
        with self._lock:
            last = self._last_repeat.get(key)
            if last is not None and now - last < _REPEAT_WINDOW_S:
                return
            self._last_repeat[key] = now
        self._emit(level, "%s: librdkafka %s: %s", self.name, facility, text)

    def _emit(self, level: int, fmt: str, *args: object) -> None:
        if not self.quiet:
            self.logger.log(level, fmt, *args)
