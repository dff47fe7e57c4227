"""The engine-neutral core of a joiner worker: validate input messages and feed the partition joiners.

Both workers read messages and hand each batch to :meth:`JoinProcessor.apply_batch`. The faust
app then drains every partition that changed (:meth:`JoinProcessor.drain`) and writes the state
changes to its table and the samples to the samples topic; the confluent-kafka consume loop
produces the samples of each batch (:meth:`JoinProcessor.drain_samples`) and writes the state
changes only at commit time, once those samples are acknowledged (:meth:`JoinProcessor.take_state`).
Everything about Kafka I/O stays in the engines; everything about the join and its metrics is
here, once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from monitoring.joiner_metrics import JoinerMetrics
from pepnet.schema import FeatureSchema
from stream.events.dead_letters import DeadLetter
from stream.events.typed_decoder import TypedEventDecoder
from stream.events.validation import REASONS, InvalidEvent
from stream.joiner.config import JoinerConfig
from stream.joiner.join_output import JoinOutput
from stream.joiner.partition_joiner import PartitionJoiner
from stream.kafka.config import TopicsConfig

_log = logging.getLogger(__name__)

IDLE_CHECK_INTERVAL_S = 0.5  # wall seconds between two idle-close checks, in both engines
InputMessage = tuple[str, int, int, bytes | None, Any, int]  # topic, partition, offset, key, value, timestamp ms
StateRecords = Callable[[int], Iterable[tuple[str, dict[str, Any]]]]  # partition -> its state records


@dataclass
class PartitionActivity:
    """Wall-clock bookkeeping of one input partition, used only by the idle close."""

    last_event_wall_s: float = field(default_factory=time.monotonic)
    last_read_offset: dict[str, int] = field(default_factory=dict)  # topic -> offset (valid or not)


class JoinProcessor:
    """Validates input messages and joins them, one :class:`PartitionJoiner` per input partition.

    ``state_records(p)`` gives the persisted records of partition ``p``; it is read when a
    partition is first seen (after an assignment, a rebalance or a restart). ``state_after_acks``:
    the engine takes the state changes only once every sample emitted before is acknowledged
    (see :class:`PartitionJoiner`).
    """

    def __init__(
        self,
        topics: TopicsConfig,
        schema: FeatureSchema,
        joiner: JoinerConfig,
        metrics: JoinerMetrics,
        state_records: StateRecords,
        wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        state_after_acks: bool = False,
    ) -> None:
        self.config = joiner
        self.state_after_acks = state_after_acks
        self.metrics = metrics
        self.tasks = schema.task_names
        self.decoder = TypedEventDecoder(schema, joiner.validation)
        self.skew = joiner.skew_policy()
        self.state_records = state_records
        self.wall_clock_ms = wall_clock_ms
        self.impressions_topic = topics.impressions.name
        self.actions_topic = topics.actions.name
        self.samples_topic = getattr(topics, joiner.output).name
        self.dead_letters_topic = topics.dead_letters.name
        self.joiners: dict[int, PartitionJoiner] = {}
        self.activity: dict[int, PartitionActivity] = {}
        # Bumped whenever joiners are rebuilt or dropped: acknowledgements of samples emitted by an
        # older joiner must not delete records a newer owner relies on.
        self.generation = 0
        self._acknowledged: list[tuple[int, str]] = []  # (partition, state key) whose sample was acked
        self.touched: set[int] = set()  # partitions applied to since the engine last drained them
        self._read_offsets: dict[tuple[str, int], int] = {}  # within a batch: (topic, partition) -> offset
        for reason in REASONS:
            metrics.dead_letter(reason, 0)

    def apply(
        self, topic: str, partition: int, offset: int, key: bytes | None, value: Any, timestamp_ms: int
    ) -> DeadLetter | None:
        """Validate and join one message; returns its dead letter when it is invalid (already counted)."""
        letters = self.apply_batch([(topic, partition, offset, key, value, timestamp_ms)])
        return letters[0] if letters else None

    def apply_batch(self, messages: Iterable[InputMessage]) -> list[DeadLetter]:
        """Validate and join a consumed batch, in order; returns the dead letters of its invalid
        messages (already counted). The partitions it touched are in :attr:`touched` until the
        engine drains them.

        The hot path of both engines: per message, one msgspec decode (C) and the join; the wall
        clock, the activity bookkeeping and the metrics are updated once per batch.
        """
        now_ms = self.wall_clock_ms()
        decode_impression, decode_action = self.decoder.impression, self.decoder.action
        impressions_topic, actions_topic = self.impressions_topic, self.actions_topic
        joiners = self.joiners
        read_offsets = self._read_offsets
        touched = self.touched
        letters: list[DeadLetter] = []
        impressions = actions = 0
        for topic, partition, offset, key, value, timestamp_ms in messages:
            joiner = joiners.get(partition)
            if joiner is None:
                joiner = self.joiner(partition)
            read_offsets[(topic, partition)] = offset
            touched.add(partition)
            try:
                if topic == impressions_topic:
                    joiner.on_impression(decode_impression(value, key, now_ms), offset, value)
                    impressions += 1
                elif topic == actions_topic:
                    joiner.on_action(decode_action(value, key, now_ms), offset)
                    actions += 1
                else:
                    raise InvalidEvent("topic", f"not an input topic: {topic}", "unknown_topic")
            except InvalidEvent as e:
                letters.append(self._dead_letter(e, topic, partition, offset, key, value, timestamp_ms))
            except Exception as e:  # a bug must not stop the partition: keep the event, say why, go on
                _log.exception("processing %s[%d]@%d failed", topic, partition, offset)
                error = InvalidEvent("value", f"{type(e).__name__}: {e}", "processing_error")
                letters.append(self._dead_letter(error, topic, partition, offset, key, value, timestamp_ms))
        wall_s = time.monotonic()
        for partition in touched:
            self._activity(partition).last_event_wall_s = wall_s
        for (topic, partition), offset in read_offsets.items():
            self._activity(partition).last_read_offset[topic] = offset
        read_offsets.clear()
        if impressions:
            self.metrics.impressions_consumed.inc(impressions)
        if actions:
            self.metrics.actions_consumed.inc(actions)
        return letters

    def _dead_letter(
        self, error: InvalidEvent, topic: str, partition: int, offset: int, key: bytes | None, value: Any, ts: int
    ) -> DeadLetter:
        self.metrics.dead_letter(error.code)
        return DeadLetter(
            value=value if isinstance(value, bytes) else b"",
            key=key,
            reason=error.code,
            detail=str(error),
            source_topic=topic,
            source_partition=partition,
            source_offset=offset,
            source_timestamp_ms=ts,
        )

    def _activity(self, partition: int) -> PartitionActivity:
        activity = self.activity.get(partition)
        if activity is None:
            activity = self.activity[partition] = PartitionActivity()
        return activity

    def joiner(self, partition: int) -> PartitionJoiner:
        """The joiner of ``partition``, restored from its state records when first needed."""
        joiner = self.joiners.get(partition)
        if joiner is None:
            joiner = self.restore(partition)
        return joiner

    def restore(self, partition: int) -> PartitionJoiner:
        """Rebuild the joiner of ``partition`` (close heaps included) from its state records."""
        config = self.config
        joiner = PartitionJoiner.restore(
            partition, self.tasks, config.window_ms, config.grace_ms, self.state_records(partition), self.skew,
            self.state_after_acks,
        )  # fmt: skip
        self.joiners[partition] = joiner
        self.metrics.assigned_partitions.set(len(self.joiners))
        _log.info(
            "joiner partition %d restored: %d pending impressions, watermark %d ms",
            partition, joiner.pending_count, joiner.clock.watermark_ms,
        )  # fmt: skip
        return joiner

    def rebuild(self, partitions: Iterable[int]) -> None:
        """Forget every joiner and restore those of ``partitions`` (after recovery or an assignment)."""
        self.generation += 1
        self.joiners = {}
        for partition in sorted(partitions):
            self.restore(partition)
        self.metrics.assigned_partitions.set(len(self.joiners))
        self._update_pending()

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget the joiners of revoked partitions (their new owner restores them)."""
        self.generation += 1
        for partition in partitions:
            self.joiners.pop(partition, None)
        self.metrics.assigned_partitions.set(len(self.joiners))
        self._update_pending()

    def drain(self, partition: int) -> JoinOutput | None:
        """The samples and state changes gathered by ``partition``'s joiner since the last call
        (counted in the metrics); None if the partition is not owned."""
        out = self.drain_samples(partition)
        if out is not None:
            out.changes = list(self.joiners[partition].take_changes())
        return out

    def drain_samples(self, partition: int) -> JoinOutput | None:
        """Like :meth:`drain`, without the state changes (they wait for :meth:`take_state`)."""
        self.touched.discard(partition)
        joiner = self.joiners.get(partition)
        if joiner is None:
            return None
        out = joiner.drain_samples()
        counts = out.counts
        m = self.metrics
        m.samples_emitted.inc(sum(1 for e in out.emitted if e.source == "join"))
        m.prelabelled_samples.inc(counts["prelabelled"])
        m.joined_actions.inc(counts["joined_actions"])
        m.late_actions.inc(counts["late_actions"])
        m.orphan_actions.inc(counts["orphan_actions"])
        m.late_impressions.inc(counts["late_impressions"])
        m.ahead_events.inc(counts["ahead_events"])
        m.stream_time_jumps.inc(counts["stream_time_jumps"])
        self._update_pending()
        return out

    def take_state(self) -> Iterator[tuple[int, str, bytes | None]]:
        """Every owned partition's state changes since the last call, as (partition, key, record)
        changelog writes in order; taken at the call, encoded lazily (consume before applying more)."""
        taken = [(partition, joiner.take_changes()) for partition, joiner in self.joiners.items()]
        return ((partition, key, record) for partition, writes in taken for key, record in writes)

    def sample_acknowledged(self, partition: int, state_key: str, generation: int) -> None:
        """The broker acknowledged the sample of pending record ``state_key``, emitted when the
        processor was at ``generation``: the record may be deleted, unless a rebuilt joiner (a
        rebalance since) owns it now and will re-emit the same sample."""
        if generation == self.generation:
            self._acknowledged.append((partition, state_key))

    def take_deletions(self) -> list[tuple[int, str]]:
        """The (partition, state key) records to delete now: acknowledged, in partitions still owned."""
        acknowledged, self._acknowledged = self._acknowledged, []
        return [(p, key) for p, key in acknowledged if p in self.joiners]

    def idle_partitions(self) -> list[int]:
        """Partitions with something pending whose inputs have been silent for ``idle_close_ms``."""
        idle_s = self.config.idle_close_ms / 1000.0
        if idle_s <= 0:
            return []
        now = time.monotonic()
        idle = []
        for partition, joiner in self.joiners.items():
            # A partition restored after a rebalance may never see another event: count from then.
            activity = self.activity.setdefault(partition, PartitionActivity())
            if now - activity.last_event_wall_s >= idle_s and (joiner.pending or joiner.early):
                idle.append(partition)
        return idle

    def caught_up(self, partition: int, end_offset: Callable[[str, int], int | None]) -> bool:
        """Both inputs of ``partition`` applied to their end.

        ``end_offset(topic, applied)``: the partition's end offset (next offset to be written), or
        any lower bound of it above ``applied + 1`` (proof of unread input), or None if unknown.
        """
        for topic in (self.impressions_topic, self.actions_topic):
            applied = self._applied_offset(partition, topic)
            end = end_offset(topic, applied)
            if end is None or applied + 1 < end:
                return False
        return True

    def _applied_offset(self, partition: int, topic: str) -> int:
        # The read offsets, not the consumer's position: the position runs ahead of what was
        # applied by the prefetch buffers, and closing on it would close before those actions.
        # The clock's offset counts after a restart, before anything is read again.
        clock = self.joiners[partition].clock
        offset = clock.impressions_offset if topic == self.impressions_topic else clock.actions_offset
        activity = self.activity.setdefault(partition, PartitionActivity())
        return max(activity.last_read_offset.get(topic, -1), offset)

    def _update_pending(self) -> None:
        self.metrics.pending_impressions.set(sum(j.pending_count for j in self.joiners.values()))
