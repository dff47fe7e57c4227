"""The joiner on a confluent-kafka consume loop (``joiner.engine: kafka``, the default).

One consumer in group ``joiner.app_id`` subscribes to both input topics with the *range*
assignor, which gives a member the same partition numbers of every co-partitioned topic, so
impressions partition p and actions partition p are joined by the same worker. The loop:

1. ``consume(batch_size)``; each message goes to :class:`JoinProcessor` (invalid ones become dead
   letters at once);
2. the samples of every partition that changed are produced;
3. every ``commit_interval_s``: flush the producer (every sample acknowledged, and the state
   written at the previous commit), commit the input offsets saved at the previous commit (the
   ones that state holds), then write the state changes since then to changelog partition p in
   order (one idempotent producer keeps them in order: records, deletions, then the clock) and
   save the offsets read so far. The state is written after the samples of the impressions it no
   longer holds are acknowledged, so a closed impression's record is deleted by that write and an
   impression opened and closed between two commits costs no state message at all; the offsets
   are committed one interval later, once the state at them is acknowledged (one flush a commit);
4. on a revocation or a stop, the same without pipelining: flush, write the state, flush, commit
   the offsets read so far and wait for the answer.

A crash re-reads from the last commit; the state's clock skips what it already holds, so the
output is the same samples, at least once, with the same ids. A revocation hands the partitions
over with their state written and acknowledged, so a clean rebalance duplicates nothing.

The state records and the changelog topic are the faust engine's (:mod:`stream.joiner.state`), so
a deployment can switch engines and keep its state; never run both engines in one group at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin import NewTopic

from monitoring.joiner_metrics import JoinerMetrics
from pepnet.schema import FeatureSchema
from stream.config.errors import UserError
from stream.joiner.config import JoinerConfig
from stream.joiner.input_alignment import InputAligner
from stream.joiner.join_processor import IDLE_CHECK_INTERVAL_S, InputMessage, JoinProcessor
from stream.joiner.state import changelog_topic_name, decode_state_key, encode_state_key
from stream.kafka.clients import kafka_error_text, new_admin, new_consumer, new_producer
from stream.kafka.config import KafkaConfig
from stream.kafka.topics import wait_visible

_log = logging.getLogger(__name__)

PartitionRecords = list[tuple[str, bytes]]  # one changelog partition's live records (JSON)


class DeliveryFailed(RuntimeError):
    """The broker refused an output message; the worker stops without committing past it."""


class JoinerConsumeLoop:
    """One joiner worker: consume both inputs, join, produce state, samples and dead letters."""

    def __init__(
        self,
        kafka: KafkaConfig,
        schema: FeatureSchema,
        joiner: JoinerConfig,
        metrics: JoinerMetrics,
        wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.kafka = kafka
        self.settings = joiner.loop
        self.partitions = kafka.topics.impressions.partitions
        self.changelog_topic = changelog_topic_name(joiner.app_id)
        self.processor = JoinProcessor(
            kafka.topics, schema, joiner, metrics, self._state_records, wall_clock_ms, state_after_acks=True
        )
        self.impressions_topic = self.processor.impressions_topic
        self.actions_topic = self.processor.actions_topic
        self.samples_topic = self.processor.samples_topic
        session_ms = int(joiner.session_timeout_s * 1000)
        overrides: dict[str, Any] = {
            "enable.auto.commit": False,
            "partition.assignment.strategy": "range",  # co-partitioned topics: same p to one member
            "session.timeout.ms": session_ms,
            "heartbeat.interval.ms": max(1, session_ms // 4),
        }
        overrides.update(prefetch_settings(kafka))
        if self.settings.statistics_interval_ms > 0:
            overrides["statistics.interval.ms"] = self.settings.statistics_interval_ms
            overrides["stats_cb"] = metrics.consumer_lag.update_from_stats
        self.consumer = new_consumer(kafka, joiner.app_id, name="joiner consumer", overrides=overrides)
        self.producer = new_producer(
            kafka,
            name="joiner producer",
            overrides={"on_delivery": self._on_delivered, "delivery.report.only.error": True},
        )
        self.aligner = InputAligner(self.impressions_topic, self.actions_topic, joiner.loop.max_input_lead_ms)
        self._positions: dict[tuple[str, int], int] = {}  # (topic, partition) -> next offset to read
        self._assigned: set[tuple[str, int]] = set()  # (topic, partition) this member owns now
        self._uncommitted = False  # read something since the last commit
        # Offsets read when the state was last written, committed once that state is acknowledged.
        self._saved_offsets: list[TopicPartition] | None = None
        self._prefetched: dict[int, PartitionRecords] = {}  # restored records, consumed by the processor
        self._delivery_error: str | None = None
        self._stopping = False

    # -- the loop ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Ask the loop to finish its batch, commit and return (safe from a signal handler)."""
        self._stopping = True

    def run(self) -> None:
        """Join until :meth:`stop`; raises :class:`DeliveryFailed` if the broker refuses output."""
        ensure_changelog_topic(self.kafka, self.changelog_topic, self.partitions)
        self.consumer.subscribe(
            [self.impressions_topic, self.actions_topic],
            on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost,
        )  # fmt: skip
        next_commit = next_idle_check = time.monotonic()
        try:
            while not self._stopping:
                messages = self.consumer.consume(self.settings.batch_size, self.settings.poll_timeout_s)
                if messages:
                    self._apply_batch(messages)
                self.producer.poll(0)
                self._raise_delivery_error()
                now = time.monotonic()
                if now >= next_idle_check:
                    self._idle_close()
                    next_idle_check = now + IDLE_CHECK_INTERVAL_S
                if now >= next_commit:
                    self._commit()
                    next_commit = now + self.settings.commit_interval_s
            self._commit_all()
        finally:
            self._stopping = True
            self.consumer.close()  # leaves the group (its on_revoke commits once more if it can)
            self.producer.flush(10)

    def _apply_batch(self, messages: list[Message]) -> None:
        processor = self.processor
        for letter in processor.apply_batch(self._inputs(messages)):
            self._produce(processor.dead_letters_topic, letter.value, letter.key, headers=letter.headers())
        for partition in list(processor.touched):
            self._flush(partition)
        self._align_inputs()

    def _align_inputs(self) -> None:
        """Pause an input running ahead of its partner in event time (stream.joiner.input_alignment)."""
        clocks = ((p, joiner.clock) for p, joiner in self.processor.joiners.items())
        pause, resume = self.aligner.update(clocks, self._has_unread)
        if pause:
            self.consumer.pause([TopicPartition(t, p) for t, p in pause])
        if resume:
            self.consumer.resume([TopicPartition(t, p) for t, p in resume])

    def _has_unread(self, topic: str, partition: int) -> bool:
        """True if the consumer has seen an end offset beyond the read position (no broker call)."""
        try:
            end = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), cached=True)[1]
        except KafkaException:
            return False
        return end > self._positions.get((topic, partition), end)

    def _inputs(self, messages: list[Message]) -> Iterator[InputMessage]:
        """The batch's messages as the processor's tuples; notes the offsets to commit."""
        positions, assigned = self._positions, self._assigned
        self._uncommitted = True
        stale = 0
        for m in messages:
            error = m.error()
            if error is not None:
                self._consumer_error(error)
                continue
            topic, partition, offset = m.topic(), m.partition(), m.offset()
            if (topic, partition) not in assigned:
                # consume() can return messages fetched before a revocation it served
                # (confluent-kafka-python#1013): the partition's new owner reads them again from
                # our last commit; joining them here would re-emit its samples.
                stale += 1
                continue
            kind, timestamp_ms = m.timestamp()
            positions[(topic, partition)] = offset + 1
            yield topic, partition, offset, m.key(), m.value(), timestamp_ms if kind else -1
        if stale:
            _log.info("skipped %d consumed messages of partitions revoked meanwhile (the new owner reads them)", stale)

    def _consumer_error(self, error: KafkaError) -> None:
        if error.fatal():
            raise KafkaException(error)
        _log.warning("consumer: %s (librdkafka retries by itself)", error.str())

    # -- output and state -------------------------------------------------------------------

    def _produce(self, topic: str, value: bytes | None, key: bytes | None, **kwargs: Any) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, **kwargs)
                return
            except BufferError:  # the local queue is full: let deliveries drain it, then retry
                self.producer.poll(0.1)

    def _flush(self, partition: int) -> None:
        """Produce the samples the partition's joiner emitted (its state waits for the commit)."""
        out = self.processor.drain_samples(partition)
        if out is None:
            return
        produce, samples = self._produce, self.samples_topic
        for emitted in out.emitted:
            produce(samples, emitted.encode(), emitted.key())

    def _write_state(self) -> None:
        """Produce every owned partition's state changes since the last commit, in order."""
        produce, changelog = self._produce, self.changelog_topic
        for partition, key, record in self.processor.take_state():
            produce(changelog, record, encode_state_key(key), partition=partition)

    def _on_delivered(self, error: KafkaError | None, message: Message) -> None:
        # Only failed deliveries are reported (delivery.report.only.error): success is known for
        # every message at once when producer.flush() returns with no failure recorded.
        if error is not None and self._delivery_error is None:
            self._delivery_error = f"delivery to {message.topic()} failed: {error.str()}"

    def _raise_delivery_error(self) -> None:
        if self._delivery_error is not None:
            raise DeliveryFailed(
                f"{self._delivery_error}; the worker stopped without committing past it: "
                "fix the broker or topic, then restart it (it resumes from its last commit)"
            )

    def _commit(self, wait: bool = False) -> bool:
        """The periodic commit, pipelined so that it waits for one flush, not two:

        1. flush: every sample produced so far, and the state written at the last commit, is
           acknowledged;
        2. commit the input offsets saved at the last commit, which that state holds (without
           waiting for the answer unless ``wait``);
        3. write the state changes since then (not awaited: the next commit's flush covers them)
           and save the offsets read so far.

        So the state reaches the changelog only after the samples of the impressions it no longer
        holds are acknowledged, and offsets are committed only once the state at them is. A commit
        that fails is covered by the next one. False if the flush did not finish.
        """
        if not self._uncommitted and self._saved_offsets is None:
            return True
        if not self._flushed("output messages"):
            return False
        if self._saved_offsets:
            self._commit_offsets(self._saved_offsets, wait=wait)
        self._saved_offsets = None
        if self._uncommitted:
            self._write_state()
            self._saved_offsets = self._read_offsets()
            self._uncommitted = False
        return True

    def _commit_all(self) -> None:
        """Commit without pipelining (a revocation, a stop): the periodic commit, then a second
        flush for the state it wrote, then the offsets it saved; every offset commit awaited."""
        if not (self._commit(wait=True) and self._saved_offsets is not None and self._flushed("state records")):
            return
        if self._commit_offsets(self._saved_offsets, wait=True):
            self._saved_offsets = None

    def _read_offsets(self) -> list[TopicPartition]:
        return [TopicPartition(t, p, o) for (t, p), o in self._positions.items()]

    def _commit_offsets(self, offsets: list[TopicPartition], wait: bool) -> bool:
        try:
            self.consumer.commit(offsets=offsets, asynchronous=not wait)
        except KafkaException as e:
            _log.warning("offset commit failed (%s); the next one retries", kafka_error_text(e))
            return False
        return True

    def _flushed(self, what: str, timeout_s: float = 30) -> bool:
        """Wait until every message produced so far is acknowledged; False if some are not after
        ``timeout_s`` (the commit waits for the next attempt). Raises :class:`DeliveryFailed`."""
        remaining = self.producer.flush(timeout_s)
        self._raise_delivery_error()
        if remaining:
            _log.warning("%d %s not acknowledged after %g s: offsets not committed yet", remaining, what, timeout_s)
        return not remaining

    # -- rebalance and recovery -------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, assigned: list[TopicPartition]) -> None:
        self.aligner.forget()  # a new assignment starts unpaused
        self._assigned |= {(tp.topic, tp.partition) for tp in assigned}
        partitions = sorted({tp.partition for tp in assigned if tp.topic == self.impressions_topic})
        started = time.monotonic()
        self._prefetched = read_state(self.kafka, self.changelog_topic, partitions)
        self.processor.rebuild(partitions)
        _log.info(
            "Worker ready: joining partitions %s of %s + %s (state restored in %.1f s)",
            partitions, self.impressions_topic, self.actions_topic, time.monotonic() - started,
        )  # fmt: skip

    def _on_revoke(self, consumer: Consumer, revoked: list[TopicPartition]) -> None:
        if self._delivery_error is None:  # never commit past output the broker refused
            self._commit_all()
        self._forget(revoked)

    def _on_lost(self, consumer: Consumer, lost: list[TopicPartition]) -> None:
        _log.warning("partitions lost (session timed out?); their new owner re-emits from the state")
        self._forget(lost)

    def _forget(self, partitions: list[TopicPartition]) -> None:
        if self.aligner.paused:
            try:
                self.consumer.resume([TopicPartition(t, p) for t, p in self.aligner.forget()])
            except KafkaException as e:  # partitions already taken away (lost): nothing to resume
                _log.debug("resume after revocation: %s", kafka_error_text(e))
        for tp in partitions:
            self._assigned.discard((tp.topic, tp.partition))
            self._positions.pop((tp.topic, tp.partition), None)
            self.processor.activity.pop(tp.partition, None)
        if self._saved_offsets:  # never commit for a partition this member no longer owns
            self._saved_offsets = [tp for tp in self._saved_offsets if (tp.topic, tp.partition) in self._assigned]
        self.processor.drop(tp.partition for tp in partitions if tp.topic == self.impressions_topic)

    def _state_records(self, partition: int) -> PartitionRecords:
        records = self._prefetched.pop(partition, None)
        if records is None:
            records = read_state(self.kafka, self.changelog_topic, [partition])[partition]
        return records

    # -- idle close -------------------------------------------------------------------------

    def _idle_close(self) -> None:
        """Close a partition's pending impressions once both inputs are read to the end and silent."""
        for partition in self.processor.idle_partitions():
            if self.processor.caught_up(partition, partial(self._end_offset, partition)):
                self.processor.joiners[partition].close_all()
                self._flush(partition)
                self._uncommitted = True  # the state changed: the next commit writes it

    def _end_offset(self, partition: int, topic: str, applied: int) -> int | None:
        """The end offset of an input partition: the one cached from the last fetch when it shows
        unread input (the usual answer while a backlog is worked off), else asked of the broker."""
        tp = TopicPartition(topic, partition)
        try:
            # The cached end is a lower bound of the real one: beyond what was applied, it proves
            # unread input without a broker round trip (tens of ms each under load).
            cached = self.consumer.get_watermark_offsets(tp, cached=True)[1]
            if cached > applied + 1:
                return cached
            return self.consumer.get_watermark_offsets(tp, timeout=5)[1]
        except KafkaException:
            return None


def prefetch_settings(kafka: KafkaConfig) -> dict[str, Any]:
    """The input consumer's prefetch queue settings, where the user did not set them.

    * ``queued.max.messages.kbytes`` 16 MiB (librdkafka: 64 MiB): the Python loop, not the fetch,
      is the bottleneck, so ~0.5 s of input is enough, and it saves 48 MiB of resident memory.
    * ``fetch.queue.backoff.ms`` 10 (librdkafka: 1,000): once the queue is full, librdkafka
      postpones the next fetch by this long; the loop drains 16 MiB in ~0.4 s, then sat idle for
      the rest of the second (a quarter of its time, benchmarks/joiner.py).
    """
    defaults = {"queued.max.messages.kbytes": 16_384, "fetch.queue.backoff.ms": 10}
    return {name: value for name, value in defaults.items() if name not in kafka.consumer}


def ensure_changelog_topic(kafka: KafkaConfig, name: str, partitions: int) -> None:
    """Create the compacted state topic if it is missing; refuse one with another partition count."""
    admin = new_admin(kafka, name="joiner admin")
    metadata = admin.list_topics(timeout=kafka.connect_timeout_s)
    topic = metadata.topics.get(name)
    if topic is not None and topic.error is None:
        if len(topic.partitions) != partitions:
            raise UserError(
                f"state topic {name} has {len(topic.partitions)} partitions but the inputs have {partitions}; "
                "delete it (the state is lost) or choose another joiner.app_id"
            )
        return
    new = NewTopic(
        name,
        num_partitions=partitions,
        replication_factor=kafka.topics.impressions.replication_factor,
        config={"cleanup.policy": "compact"},
    )
    try:
        admin.create_topics([new], operation_timeout=30)[name].result()
    except KafkaException as e:
        if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:  # another worker created it first
            raise UserError(f"creating state topic {name} failed: {kafka_error_text(e)}") from None
    wait_visible(admin, {name: partitions}, 30)


def read_state(
    kafka: KafkaConfig, topic: str, partitions: list[int], timeout_s: float = 300
) -> dict[int, PartitionRecords]:
    """The live records of the given changelog partitions: each key's last value (JSON bytes, as
    written: a pending impression's bytes are kept), tombstones applied."""
    if not partitions:
        return {}
    state: dict[int, dict[str, bytes]] = {p: {} for p in partitions}
    consumer = new_consumer(kafka, f"{topic}-restore", name="state restore", overrides={"enable.auto.commit": False})
    deadline = time.monotonic() + timeout_s
    try:
        ends = {p: _watermarks(consumer, TopicPartition(topic, p), deadline) for p in partitions}
        todo = {p for p, (low, high) in ends.items() if high > low}
        consumer.assign([TopicPartition(topic, p, ends[p][0]) for p in sorted(todo)])
        while todo:
            if time.monotonic() > deadline:
                raise UserError(f"restoring the joiner state from {topic} took over {timeout_s:g} s; is the broker up?")
            for m in consumer.consume(10_000, 0.5):
                if m.error() is not None:
                    raise KafkaException(m.error())
                key, record = decode_state_key(m.key()), m.value()
                records = state[m.partition()]
                if record is None:
                    records.pop(key, None)
                else:
                    records[key] = record
            for tp in consumer.position([TopicPartition(topic, p) for p in todo]):
                if tp.offset >= ends[tp.partition][1]:
                    todo.discard(tp.partition)
    finally:
        consumer.close()
    return {p: list(records.items()) for p, records in state.items()}


def _watermarks(consumer: Consumer, tp: TopicPartition, deadline: float) -> tuple[int, int]:
    """(low, high) offsets of ``tp``, retried while the broker is still electing a leader (a topic
    created a moment ago, a broker restarting) until ``deadline`` (time.monotonic())."""
    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=10)
        except KafkaException as e:
            if time.monotonic() > deadline:
                reason = kafka_error_text(e)
                raise UserError(f"cannot read the offsets of {tp.topic}[{tp.partition}]: {reason}") from None
            _log.info("offsets of %s[%d] not available yet (%s); retrying", tp.topic, tp.partition, kafka_error_text(e))
            time.sleep(0.5)
