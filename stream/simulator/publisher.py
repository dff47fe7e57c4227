"""Publishes a simulated stream to Kafka: impressions and actions (or pre-labelled impressions) keyed by
user id, JSON encoded, at a target wall-clock rate or as fast as possible."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

from confluent_kafka import KafkaException, Producer

from stream.config.errors import UserError
from stream.events.formats import Action, Impression, encode
from stream.kafka.clients import check_reachable, kafka_error_text, new_producer
from stream.kafka.config import KafkaConfig
from stream.simulator.generator import EventSimulator

# An impression budget that no run reaches: --duration alone simulates until the time is up.
UNBOUNDED_IMPRESSIONS = 10**15
# Pace and poll the producer every this many events (cheap enough, smooth enough).
PACE_EVERY = 256


class ProgressBar(Protocol):
    """What publish_simulation needs of a progress bar (tqdm fits)."""

    def update(self, n: int = 1) -> object: ...


@dataclass(frozen=True)
class PublishOptions:
    """What to publish. ``rate`` is events/s of wall-clock time (None: as fast as possible);
    stops after ``impressions`` impressions or ``duration_s`` seconds, whichever comes first (with
    neither, a paced run goes on until the process is stopped)."""

    impressions: int | None = None
    duration_s: float | None = None
    rate: float | None = None
    labelled: bool = False
    window_ms: int = 300_000  # join window of the pre-labelled labels (event time)
    flush_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        if self.impressions is None and self.duration_s is None and self.rate is None:
            raise ValueError("impressions, duration_s or rate must be given (an unpaced run needs an end)")
        if self.impressions is not None and self.impressions < 0:
            raise ValueError(f"impressions must be >= 0, got {self.impressions}")
        if self.duration_s is not None and not self.duration_s > 0:
            raise ValueError(f"duration_s must be > 0 (seconds), got {self.duration_s}")
        if self.rate is not None and not self.rate > 0:
            raise ValueError(f"rate must be > 0 (events/s), got {self.rate}")


@dataclass
class PublishReport:
    """What was sent (counts of acknowledged messages) and how long it took (wall clock, s)."""

    impressions: int = 0
    actions: int = 0
    seconds: float = 0.0
    failed: int = 0
    topics: dict[str, str] = field(default_factory=dict)  # role -> topic name

    @property
    def events(self) -> int:
        """Acknowledged impressions and actions together."""
        return self.impressions + self.actions

    def summary(self) -> str:
        """One line for the terminal: counts, topics, wall-clock seconds and events/s."""
        rate = self.events / self.seconds if self.seconds > 0 else 0.0
        return (
            f"sent {self.impressions} impressions to {self.topics.get('impressions')} and {self.actions} actions "
            f"to {self.topics.get('actions')} in {self.seconds:.1f} s ({rate:,.0f} events/s)"
            + (f"; {self.failed} deliveries FAILED" if self.failed else "")
        )


def publish_simulation(
    simulator: EventSimulator,
    kafka: KafkaConfig,
    options: PublishOptions,
    progress: ProgressBar | None = None,
) -> PublishReport:
    """Produce the simulator's stream to ``kafka.topics.impressions`` / ``actions`` and flush.

    ``progress`` is an optional tqdm-like object with ``update(n)``, advanced per impression.
    Raises ``UserError`` when the cluster is unreachable or messages stay undelivered.
    """
    check_reachable(kafka)
    topics = {"impressions": kafka.topics.impressions.name, "actions": kafka.topics.actions.name}
    report = PublishReport(topics=topics)
    try:
        producer = new_producer(kafka, name="simulator producer")
    except KafkaException as e:
        raise UserError(f"cannot create a Kafka producer: {kafka_error_text(e)}") from None

    def delivered(error, message) -> None:
        if error is not None:
            report.failed += 1
        elif message.topic() == topics["impressions"]:
            report.impressions += 1
        else:
            report.actions += 1

    start = time.monotonic()
    deadline = None if options.duration_s is None else start + options.duration_s

    def pace(sent: int) -> None:
        """Sleep while ``sent`` events are ahead of the target rate."""
        if options.rate is not None:
            ahead_s = sent / options.rate - (time.monotonic() - start)
            if ahead_s > 0:
                time.sleep(ahead_s)

    n = 0
    for n, event in enumerate(_stream(simulator, options), start=1):
        topic = topics["impressions"] if isinstance(event, Impression) else topics["actions"]
        _produce(producer, topic, event, delivered)
        if isinstance(event, Impression) and progress is not None:
            progress.update(1)
        if n % PACE_EVERY == 0:
            producer.poll(0)
            if deadline is not None and time.monotonic() >= deadline:
                break
            pace(n)
    pace(n)  # the tail after the last checkpoint keeps the rate too
    remaining = producer.flush(options.flush_timeout_s)
    report.seconds = time.monotonic() - start
    if remaining:
        raise UserError(
            f"{remaining} messages were still undelivered after {options.flush_timeout_s:g} s "
            f"({report.summary()}); is the broker at {kafka.bootstrap_servers} healthy?"
        )
    return report


def _stream(simulator: EventSimulator, options: PublishOptions) -> Iterator[Impression | Action]:
    num = UNBOUNDED_IMPRESSIONS if options.impressions is None else options.impressions
    if options.labelled:
        return simulator.prelabelled_impressions(num, options.window_ms)
    return simulator.events(num)


def _produce(producer: Producer, topic: str, event: Impression | Action, on_delivery) -> None:
    value, key = encode(event), event.key()
    while True:
        try:
            producer.produce(topic, value=value, key=key, on_delivery=on_delivery)
            return
        except BufferError:  # local queue full: let deliveries drain, then retry
            producer.poll(0.1)
