"""Configuration of the impression/action joiner and its workers (YAML section ``joiner``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from stream.joiner.clock_skew import ClockSkewPolicy

MAX_EVENT_ID = 2**63  # ids must fit a signed 64-bit integer (exclusive bound)


@dataclass
class ValidationLimits:
    """What an event on the wire may look like before it is sent to the dead-letter topic."""

    max_payload_bytes: int = 16_384  # larger messages are dead-lettered as ``oversized``
    # Event time may run ahead of the worker's wall clock by at most this (ms). Large on purpose:
    # a replay of old data is never "in the future", and a skewed producer clock is tolerated.
    max_future_ms: int = 86_400_000
    max_id_chars: int = 128  # length of impression ids and string feature values
    require_key_match: bool = True  # the message key must be the user id (co-partitioning)

    def __post_init__(self) -> None:
        if self.max_payload_bytes <= 0:
            raise ValueError(f"max_payload_bytes must be > 0 (bytes), got {self.max_payload_bytes}")
        if self.max_future_ms < 0:
            raise ValueError(f"max_future_ms must be >= 0 (ms), got {self.max_future_ms}")
        if self.max_id_chars <= 0:
            raise ValueError(f"max_id_chars must be > 0, got {self.max_id_chars}")


@dataclass
class FaustSettings:
    """Settings handed to the faust-streaming app of each worker (see docs/events.md)."""

    # Messages buffered per partition between the consumer and the agent.
    stream_buffer_maxsize: int = 4096
    # Commit offsets after this many acked events or this many seconds, whichever comes first.
    broker_commit_every: int = 10_000
    broker_commit_interval_s: float = 2.0
    # Events the agent takes at once (a batch is processed without yielding to the event loop).
    batch_size: int = 1000
    batch_within_s: float = 0.3
    # Where faust keeps its per-worker files (the table store itself is in memory + changelog).
    data_dir: str = ".pepnet/joiner"
    web_enabled: bool = False  # faust's own web server; metrics are served by monitoring.server
    producer_linger_ms: int = 20

    def __post_init__(self) -> None:
        for name in ("stream_buffer_maxsize", "broker_commit_every", "batch_size"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("broker_commit_interval_s", "batch_within_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 (seconds), got {getattr(self, name)}")
        if not self.data_dir:
            raise ValueError("data_dir must not be empty")
        if self.producer_linger_ms < 0:
            raise ValueError(f"producer_linger_ms must be >= 0 (ms), got {self.producer_linger_ms}")


@dataclass
class ConsumeLoopSettings:
    """Settings of the confluent-kafka consume loop (``joiner.engine: kafka``)."""

    batch_size: int = 2000  # messages per consume() call (a batch is joined, then its output produced)
    poll_timeout_s: float = 0.2  # longest wait for a batch; also the granularity of a clean stop
    # Offsets are committed (after every output message is acknowledged) at most this often.
    commit_interval_s: float = 2.0
    statistics_interval_ms: int = 5000  # librdkafka statistics, the source of consumer lag (0 = off)
    # Pause the input of a partition that runs this far ahead of the other in event time (ms), while
    # the other has unread messages (stream.joiner.input_alignment); 0 = read as fetched. A guard
    # for extreme skew only: librdkafka drops a paused partition's prefetched messages and fetches
    # them again on resume, so a tight bound (2 s) halved a worker's rate on a backlog.
    max_input_lead_ms: int = 300_000

    def __post_init__(self) -> None:
        if self.max_input_lead_ms < 0:
            raise ValueError(f"max_input_lead_ms must be >= 0 (ms, 0 = off), got {self.max_input_lead_ms}")
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {self.batch_size}")
        for name in ("poll_timeout_s", "commit_interval_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0 (seconds), got {getattr(self, name)}")
        if self.statistics_interval_ms < 0:
            raise ValueError(f"statistics_interval_ms must be >= 0 (ms, 0 = off), got {self.statistics_interval_ms}")


@dataclass
class JoinerConfig:
    """Event-time join of actions to impressions. Times in ms of event time unless said otherwise."""

    window_ms: int = 5 * 60_000
    grace_ms: int = 30_000
    app_id: str = "pepnet-joiner"
    # Which kafka.topics role receives the samples (a replay writes to samples_replay).
    output: Literal["samples", "samples_replay"] = "samples"
    # Wall-clock ms both inputs of a partition must have been caught up (read to their end) and
    # silent before all its pending impressions are closed; 0 = never (pure event time).
    idle_close_ms: int = 3000
    # The worker's consumer: "kafka" = a confluent-kafka consume loop (10-12x faster), "faust" =
    # a faust-streaming app. Both keep the same state records in the same changelog topic.
    engine: Literal["kafka", "faust"] = "kafka"
    # A worker killed with -9 keeps its partitions until the group coordinator stops hearing from
    # it: this long (seconds). Short enough for a quick take-over, long enough for GC pauses.
    session_timeout_s: float = 10.0
    # Wrong device clocks (docs/events.md, "Event-time skew"), per input of a partition: an event up
    # to clock_step_ms ahead of the stream time moves it (None = grace_ms / 2; 0 = no guard, the
    # stream time is the largest event time read); one further ahead is joined without moving it,
    # or dead-lettered as future_event_time beyond max_ahead_ms; the stream time jumps forward only
    # once clock_jump_users different users are that far ahead with no on-time event between them.
    clock_step_ms: int | None = None
    max_ahead_ms: int = 3_600_000
    clock_jump_users: int = 3
    validation: ValidationLimits = field(default_factory=ValidationLimits)
    loop: ConsumeLoopSettings = field(default_factory=ConsumeLoopSettings)
    faust: FaustSettings = field(default_factory=FaustSettings)

    def __post_init__(self) -> None:
        if self.window_ms <= 0:
            raise ValueError(f"window_ms must be > 0, got {self.window_ms}")
        if self.grace_ms < 0:
            raise ValueError(f"grace_ms must be >= 0, got {self.grace_ms}")
        if not self.app_id:
            raise ValueError("app_id must not be empty")
        if self.output not in ("samples", "samples_replay"):
            raise ValueError(f"output must be 'samples' or 'samples_replay', got {self.output!r}")
        if self.engine not in ("kafka", "faust"):
            raise ValueError(f"engine must be 'kafka' (confluent-kafka loop) or 'faust', got {self.engine!r}")
        if not self.session_timeout_s > 0:
            raise ValueError(f"session_timeout_s must be > 0 (seconds), got {self.session_timeout_s}")
        if self.idle_close_ms < 0:
            raise ValueError(f"idle_close_ms must be >= 0 (ms, 0 = never), got {self.idle_close_ms}")
        if self.clock_step_ms is not None and not 0 <= self.clock_step_ms <= self.grace_ms:
            raise ValueError(
                f"clock_step_ms must be in [0, grace_ms = {self.grace_ms}] (ms; null = grace_ms / 2, 0 = off): "
                f"an event accepted further ahead would make on-time events late; got {self.clock_step_ms}"
            )
        if self.max_ahead_ms < self.step_ms:
            raise ValueError(f"max_ahead_ms must be >= clock_step_ms ({self.step_ms} ms), got {self.max_ahead_ms}")
        if self.clock_jump_users < 1:
            raise ValueError(f"clock_jump_users must be >= 1, got {self.clock_jump_users}")

    @property
    def step_ms(self) -> int:
        """The effective clock step (ms): ``clock_step_ms``, or half the grace when unset."""
        return self.grace_ms // 2 if self.clock_step_ms is None else self.clock_step_ms

    def skew_policy(self) -> ClockSkewPolicy:
        """The event-time skew bounds of the join (stream.joiner.clock_skew)."""
        return ClockSkewPolicy(self.step_ms, self.max_ahead_ms, self.clock_jump_users, self.grace_ms)
