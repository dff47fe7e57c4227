"""The joiner as a faust-streaming app: one agent reads impressions and actions, joins, emits.

One agent consumes both co-partitioned input topics as one stream (events of impressions
partition p and actions partition p go to the same worker and the same :class:`PartitionJoiner`).
Its state lives in a plain (not windowed) changelog-backed faust table whose records are written
with an explicit changelog partition equal to the input partition, in order; after recovery or a
rebalance the joiners, including their close heaps, are rebuilt from the table.

Delivery: at least once, duplicates carry the same sample id (= impression id) and the same
labels. A pending impression's record is deleted only after the broker has acknowledged its
sample, so a crash between the two re-emits the identical sample instead of losing it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faust
from faust.types import TP, EventT

from monitoring.joiner_metrics import JoinerMetrics
from pepnet.schema import FeatureSchema
from stream.dead_letters import DeadLetter
from stream.events import encode
from stream.joiner.broker_credentials import faust_broker_credentials
from stream.joiner.partition_joiner import JoinOutput, PartitionJoiner, StateChange
from stream.joiner_config import JoinerConfig
from stream.kafka.config import KafkaConfig
from stream.validation import REASONS, EventValidator, InvalidEvent

STATE_TABLE = "joiner-state"
IDLE_CHECK_INTERVAL_S = 0.5
_log = logging.getLogger(__name__)


@dataclass
class _PartitionActivity:
    """Wall-clock bookkeeping of one input partition, used only by the idle close."""

    last_event_wall_s: float = field(default_factory=time.monotonic)
    last_read_offset: dict[str, int] = field(default_factory=dict)  # topic -> offset (valid or not)


class JoinerApp:
    """A faust app that joins actions to impressions in event time; see docs/events.md."""

    def __init__(
        self,
        kafka: KafkaConfig,
        schema: FeatureSchema,
        joiner: JoinerConfig,
        metrics: JoinerMetrics,
        wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.config = joiner
        self.metrics = metrics
        self.tasks = schema.task_names
        self.validator = EventValidator(schema, joiner.validation)
        self.wall_clock_ms = wall_clock_ms
        topics = kafka.topics
        self.impressions_topic = topics.impressions.name
        self.actions_topic = topics.actions.name
        self.partitions = topics.impressions.partitions
        settings = joiner.faust
        datadir = Path(settings.data_dir) / joiner.app_id
        datadir.mkdir(parents=True, exist_ok=True)
        self.app = faust.App(
            joiner.app_id,
            broker=[f"kafka://{server}" for server in kafka.bootstrap_servers.split(",")],
            store="memory://",
            datadir=str(datadir),
            topic_partitions=self.partitions,
            stream_buffer_maxsize=settings.stream_buffer_maxsize,
            broker_commit_every=settings.broker_commit_every,
            broker_commit_interval=settings.broker_commit_interval_s,
            producer_linger_ms=settings.producer_linger_ms,
            consumer_auto_offset_reset="earliest",
            web_enabled=settings.web_enabled,
            broker_session_timeout=settings.session_timeout_s,
            broker_heartbeat_interval=settings.session_timeout_s / 4,
            topic_allow_declare=True,
            broker_credentials=faust_broker_credentials(kafka.client),
        )
        self.table = self.app.Table(STATE_TABLE, partitions=self.partitions)  # json keys and values
        self.source = self.app.topic(
            self.impressions_topic, self.actions_topic, key_serializer="raw", value_serializer="raw"
        )
        self.samples_topic = getattr(topics, joiner.output).name
        self.dead_letters_topic = topics.dead_letters.name
        self.changelog_topic = self.table.changelog_topic.get_topic_name()
        self.joiners: dict[int, PartitionJoiner] = {}
        self.activity: dict[int, _PartitionActivity] = {}
        self.samples_sent = 0
        self._producer: Any = None  # faust's AIOKafkaProducer, known once the app runs
        self._confirmed: dict[int, list[str]] = {}  # partition -> state keys whose samples were acked
        self._generation = 0  # bumped on every rebuild: late delivery callbacks of old joiners are ignored
        for reason in REASONS:
            metrics.dead_letter(reason, 0)
        self.app.agent(self.source, name="join")(self._join_agent)
        self.table.on_recover(self._rebuild_joiners)
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.app.timer(IDLE_CHECK_INTERVAL_S)(self._idle_close)

    # -- agent ------------------------------------------------------------------------------

    async def _join_agent(self, stream: faust.StreamT) -> None:
        settings = self.config.faust
        async for events in stream.take_events(settings.batch_size, settings.batch_within_s):
            touched: set[int] = set()
            for event in events:
                partition = await self._apply(event)
                if partition is not None:
                    touched.add(partition)
            for partition in touched:
                await self._flush(partition)
            await self._write_confirmed_deletions()

    async def _apply(self, event: EventT) -> int | None:
        """Validate and join one message; returns the partition whose joiner changed, if any."""
        message = event.message
        partition = message.partition
        activity = self.activity.setdefault(partition, _PartitionActivity())
        activity.last_event_wall_s = time.monotonic()
        activity.last_read_offset[message.topic] = message.offset
        joiner = self._joiner(partition)
        try:
            if message.topic == self.impressions_topic:
                impression = self.validator.impression(message.value, message.key, self.wall_clock_ms())
                self.metrics.impressions_consumed.inc()
                joiner.on_impression(impression, message.offset)
            elif message.topic == self.actions_topic:
                action = self.validator.action(message.value, message.key, self.wall_clock_ms())
                self.metrics.actions_consumed.inc()
                joiner.on_action(action, message.offset)
            else:
                raise InvalidEvent("topic", f"not an input topic: {message.topic}", "unknown_topic")
        except InvalidEvent as e:
            await self._dead_letter(event, e)
        except Exception as e:  # a bug must not stop the partition: keep the event, say why, go on
            _log.exception("processing %s[%d]@%d failed", message.topic, partition, message.offset)
            await self._dead_letter(event, InvalidEvent("value", f"{type(e).__name__}: {e}", "processing_error"))
        return partition

    async def _dead_letter(self, event: EventT, error: InvalidEvent) -> None:
        message = event.message
        letter = DeadLetter(
            value=message.value if isinstance(message.value, bytes) else b"",
            key=message.key,
            reason=error.code,
            detail=str(error),
            source_topic=message.topic,
            source_partition=message.partition,
            source_offset=message.offset,
            source_timestamp_ms=int(message.timestamp * 1000) if message.timestamp else -1,
        )
        await self._send(self.dead_letters_topic, letter.key, letter.value, None, letter.headers())
        self.metrics.dead_letter(error.code)

    # -- output and state -------------------------------------------------------------------

    async def _send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> asyncio.Future[Any]:
        """Hand one message to the producer; returns the delivery future.

        Straight to faust's aiokafka producer rather than faust's send_soon buffer, which hands
        messages over one event-loop round trip at a time. faust flushes this producer before
        every offset commit, so the at-least-once argument holds.
        """
        if self._producer is None:
            self._producer = self.app.producer._ensure_producer()
        return await self._producer.send(topic, value, key=key, partition=partition, headers=headers)

    def _joiner(self, partition: int) -> PartitionJoiner:
        joiner = self.joiners.get(partition)
        if joiner is None:
            joiner = self._restore(partition)
        return joiner

    def _restore(self, partition: int) -> PartitionJoiner:
        joiner = PartitionJoiner.restore(
            partition,
            self.tasks,
            self.config.window_ms,
            self.config.grace_ms,
            list(self.table.data.items()),
        )
        self.joiners[partition] = joiner
        return joiner

    async def _flush(self, partition: int) -> None:
        """Persist the joiner's state changes in order, then produce its samples."""
        joiner = self.joiners.get(partition)
        if joiner is None:
            return
        out = joiner.drain()
        await self._write_changes(partition, out.changes)
        generation = self._generation
        for emitted in out.emitted:
            sample = emitted.sample
            delivery = await self._send(self.samples_topic, sample.key(), encode(sample), None)
            if emitted.state_key is not None:
                delivery.add_done_callback(self._on_sample_delivered(partition, emitted.state_key, generation))
        self.samples_sent += len(out.emitted)
        self._count(out)
        self.metrics.pending_impressions.set(sum(j.pending_count for j in self.joiners.values()))

    async def _write_changes(self, partition: int, changes: list[StateChange]) -> None:
        data = self.table.data
        for key, record in changes:
            if record is None:
                data.pop(key, None)
                await self._send(self.changelog_topic, json.dumps(key).encode(), None, partition)
            else:
                data[key] = record
                await self._send(self.changelog_topic, json.dumps(key).encode(), json.dumps(record).encode(), partition)

    def _on_sample_delivered(self, partition: int, key: str, generation: int) -> Callable[[Any], None]:
        def on_delivered(future: asyncio.Future[Any]) -> None:
            # A failed send, or a rebuilt joiner (rebalance) that owns the record now and will
            # re-emit the same sample: keep the record.
            if not future.cancelled() and future.exception() is None and generation == self._generation:
                self._confirmed.setdefault(partition, []).append(key)

        return on_delivered

    async def _write_confirmed_deletions(self) -> None:
        """Delete the records of pending impressions whose samples the broker has acknowledged."""
        confirmed, self._confirmed = self._confirmed, {}
        for partition, keys in confirmed.items():
            if partition in self.joiners:
                await self._write_changes(partition, [(key, None) for key in keys])

    def _count(self, out: JoinOutput) -> None:
        counts = out.counts
        m = self.metrics
        joined = sum(1 for e in out.emitted if e.sample.join.source == "join")
        m.samples_emitted.inc(joined)
        m.prelabelled_samples.inc(counts["prelabelled"])
        m.joined_actions.inc(counts["joined_actions"])
        m.late_actions.inc(counts["late_actions"])
        m.orphan_actions.inc(counts["orphan_actions"])

    # -- rebalance, recovery, idle close ----------------------------------------------------

    async def _rebuild_joiners(self) -> None:
        """After changelog recovery: rebuild every assigned partition's joiner from the table."""
        self._generation += 1
        assigned = {tp.partition for tp in self.app.consumer.assignment() if tp.topic == self.impressions_topic}
        self.joiners = {}
        for partition in sorted(assigned):
            joiner = self._restore(partition)
            _log.info(
                "joiner partition %d restored: %d pending impressions, watermark %d ms",
                partition, joiner.pending_count, joiner.clock.watermark_ms,
            )  # fmt: skip
        self.metrics.pending_impressions.set(sum(j.pending_count for j in self.joiners.values()))

    async def _on_revoked(self, app: Any, revoked: set[TP], **_: Any) -> None:
        self._generation += 1
        for tp in revoked:
            if tp.topic == self.impressions_topic:
                self.joiners.pop(tp.partition, None)

    async def _idle_close(self) -> None:
        """Close a partition's pending impressions once both inputs are read to the end and silent."""
        idle_s = self.config.idle_close_ms / 1000.0
        if idle_s <= 0:
            return
        now = time.monotonic()
        for partition, joiner in list(self.joiners.items()):
            # A partition restored after a rebalance may never see another event: count from then.
            activity = self.activity.setdefault(partition, _PartitionActivity())
            if now - activity.last_event_wall_s < idle_s:
                continue
            if not (joiner.pending or joiner.early) or not await self._caught_up(partition, joiner, activity):
                continue
            joiner.close_all()
            await self._flush(partition)
        await self._write_confirmed_deletions()

    async def _caught_up(self, partition: int, joiner: PartitionJoiner, activity: _PartitionActivity) -> bool:
        """Both inputs of the partition applied to their end (not merely fetched: see below)."""
        consumer = self.app.consumer
        applied = {
            self.impressions_topic: joiner.clock.impressions_offset,  # restored from the table after a restart
            self.actions_topic: joiner.clock.actions_offset,
        }
        for topic in (self.impressions_topic, self.actions_topic):
            highwater = consumer.highwater(TP(topic, partition))
            if highwater is None:
                return False
            # The consumer's position is not enough: it runs ahead of the agent by the stream
            # buffers, and closing on it emitted samples before their buffered actions were applied.
            if max(activity.last_read_offset.get(topic, -1), applied[topic]) + 1 < highwater:
                return False
        return True
