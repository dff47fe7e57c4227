"""The joiner as a faust-streaming app (``joiner.engine: faust``): one agent reads impressions
and actions, joins, emits.

One agent consumes both co-partitioned input topics as one stream (events of impressions
partition p and actions partition p go to the same worker and the same :class:`PartitionJoiner`).
Its state lives in a plain (not windowed) changelog-backed faust table whose records are written
with an explicit changelog partition equal to the input partition, in order; after recovery or a
rebalance the joiners, including their close heaps, are rebuilt from the table. The validation and
the join itself are :class:`~stream.joiner.join_processor.JoinProcessor`'s, shared with the
confluent-kafka engine (:mod:`stream.joiner.consumer_loop`), which is 10-12x faster (benchmarks/joiner.py).

Delivery: at least once, duplicates carry the same sample id (= impression id) and the same
labels. A pending impression's record is deleted only after the broker has acknowledged its
sample, so a crash between the two re-emits the identical sample instead of losing it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import faust
from faust.types import TP, EventT

from monitoring.joiner_metrics import JoinerMetrics
from pepnet.schema import FeatureSchema
from stream.joiner.broker_credentials import faust_broker_credentials
from stream.joiner.config import JoinerConfig
from stream.joiner.join_output import StateChange
from stream.joiner.join_processor import IDLE_CHECK_INTERVAL_S, InputMessage, JoinProcessor
from stream.joiner.state import STATE_TABLE, encode_state_key
from stream.kafka.config import KafkaConfig


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
        topics = kafka.topics
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
            broker_session_timeout=joiner.session_timeout_s,
            broker_heartbeat_interval=joiner.session_timeout_s / 4,
            topic_allow_declare=True,
            broker_credentials=faust_broker_credentials(kafka.client),
        )
        self.table = self.app.Table(STATE_TABLE, partitions=self.partitions)  # json keys and values
        self.processor = JoinProcessor(
            topics, schema, joiner, metrics, lambda _: list(self.table.data.items()), wall_clock_ms
        )
        self.impressions_topic = self.processor.impressions_topic
        self.actions_topic = self.processor.actions_topic
        self.samples_topic = self.processor.samples_topic
        self.source = self.app.topic(
            self.impressions_topic, self.actions_topic, key_serializer="raw", value_serializer="raw"
        )
        self.changelog_topic = self.table.changelog_topic.get_topic_name()
        self._producer: Any = None  # faust's AIOKafkaProducer, known once the app runs
        self.app.agent(self.source, name="join")(self._join_agent)
        self.table.on_recover(self._rebuild_joiners)
        self.app.on_partitions_revoked.connect(self._on_revoked)
        self.app.timer(IDLE_CHECK_INTERVAL_S)(self._idle_close)

    # -- agent ------------------------------------------------------------------------------

    async def _join_agent(self, stream: faust.StreamT) -> None:
        settings = self.config.faust
        processor = self.processor
        async for events in stream.take_events(settings.batch_size, settings.batch_within_s):
            for letter in processor.apply_batch(_inputs(events)):
                await self._send(processor.dead_letters_topic, letter.key, letter.value, None, letter.headers())
            for partition in list(processor.touched):
                await self._flush(partition)
            await self._write_deletions()

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

    async def _flush(self, partition: int) -> None:
        """Persist the joiner's state changes in order, then produce its samples."""
        out = self.processor.drain(partition)
        if out is None:
            return
        await self._write_changes(partition, out.changes)
        generation = self.processor.generation
        for emitted in out.emitted:
            delivery = await self._send(self.samples_topic, emitted.key(), emitted.encode(), None)
            if emitted.state_key is not None:
                delivery.add_done_callback(self._on_sample_delivered(partition, emitted.state_key, generation))

    async def _write_changes(self, partition: int, changes: list[StateChange]) -> None:
        data = self.table.data
        for key, record in changes:
            if record is None:
                data.pop(key, None)
            else:
                data[key] = record
            await self._send(self.changelog_topic, encode_state_key(key), record, partition)

    def _on_sample_delivered(self, partition: int, key: str, generation: int) -> Callable[[Any], None]:
        def on_delivered(future: asyncio.Future[Any]) -> None:
            if not future.cancelled() and future.exception() is None:  # a failed send keeps the record
                self.processor.sample_acknowledged(partition, key, generation)

        return on_delivered

    async def _write_deletions(self) -> None:
        """Delete the records of pending impressions whose samples the broker has acknowledged."""
        for partition, key in self.processor.take_deletions():
            await self._write_changes(partition, [(key, None)])

    # -- rebalance, recovery, idle close ----------------------------------------------------

    async def _rebuild_joiners(self) -> None:
        """After changelog recovery: rebuild every assigned partition's joiner from the table.

        Also suspends faust's flow control until faust resumes it at the end of its recovery.
        faust (0.15.3, ``Recovery.on_recovery_completed`` in faust/tables/recovery.py) calls this
        callback, then resumes the input partitions and awaits ``consumer.perform_seek()`` with the
        fetcher running, and only then calls ``app.flow_control.resume()``, which empties every
        stream queue (they are ``clear_on_resume``: mode.utils.queues.FlowControlEvent.resume).
        Records fetched during the seek were dropped there, after the consumer had counted them
        as read, so they never came again: events lost after a restart or a rebalance under live
        input. Suspended, faust's conductor holds them (it awaits the flow before putting a record
        in a queue) until that resume, so the queues are empty when they are cleared.
        """
        self.app.flow_control.suspend()
        assigned = {tp.partition for tp in self.app.consumer.assignment() if tp.topic == self.impressions_topic}
        self.processor.rebuild(assigned)

    async def _on_revoked(self, app: Any, revoked: set[TP], **_: Any) -> None:
        self.processor.drop(tp.partition for tp in revoked if tp.topic == self.impressions_topic)

    async def _idle_close(self) -> None:
        """Close a partition's pending impressions once both inputs are read to the end and silent."""
        consumer = self.app.consumer
        for partition in self.processor.idle_partitions():
            if self.processor.caught_up(partition, lambda topic, _, p=partition: consumer.highwater(TP(topic, p))):
                self.processor.joiners[partition].close_all()
                await self._flush(partition)
        await self._write_deletions()


def _inputs(events: list[EventT]) -> Iterator[InputMessage]:
    """faust events as the processor's input tuples."""
    for event in events:
        m = event.message
        yield m.topic, m.partition, m.offset, m.key, m.value, int(m.timestamp * 1000) if m.timestamp else -1
