"""Labelled samples of a Kafka topic between two offsets or times, for ``pepnet evaluate --topic``.

The range is resolved once at the start (``stream.trainer.replay.resolve_range``: offsets, or the
first offsets at or after message timestamps), so the evaluation is bounded even on a live topic.
Each partition is read by its own consumer (no consumer group offsets are used or committed) and
the partitions are merged by (event time, partition, offset): the same range gives the same
order, hence the same figures, in every run. Undecodable messages are skipped and counted.
"""

from __future__ import annotations

import heapq
import json
import logging
import time
import uuid
from collections.abc import Iterator
from typing import Any

from confluent_kafka import TopicPartition

from pepnet.schema import FeatureSchema
from stream.config.errors import UserError
from stream.evaluation.sources import FILE_CHUNK_LINES, ORACLE_FIELD, LabelledBatch, oracle_rows, sample_line_error
from stream.events.batching import SampleBatcher
from stream.events.formats import compact_json, sample_from_dict
from stream.kafka.clients import new_consumer
from stream.kafka.config import KafkaConfig
from stream.trainer.replay import ReplayRange, resolve_range

log = logging.getLogger(__name__)

Entry = tuple[int, int, int, dict[str, Any]]  # event time (ms), partition, offset, decoded sample


class TopicSource:
    """The samples of ``topic`` in ``span`` (offsets and/or message timestamps, see ReplayRange)."""

    def __init__(
        self, kafka: KafkaConfig, topic: str, schema: FeatureSchema, span: ReplayRange, timeout_s: float = 30.0
    ) -> None:
        self.kafka = kafka
        self.topic = topic
        self.schema = schema
        self.batcher = SampleBatcher(schema)
        self.start, self.end = resolve_range(kafka, topic, span)
        self.timeout_s = timeout_s
        self.skipped = 0
        self.expected_samples: int | None = sum(self.end[p] - self.start[p] for p in self.start)
        log.info("evaluating %s: %d messages, offsets %s to %s", topic, self.expected_samples, self.start, self.end)

    def chunks(self) -> Iterator[LabelledBatch]:
        group = f"pepnet-evaluate-{uuid.uuid4().hex[:8]}"
        partitions = [p for p in sorted(self.start) if self.end[p] > self.start[p]]
        readers = [self._partition(group, p, self.start[p], self.end[p]) for p in partitions]
        pending: list[dict[str, Any]] = []
        for _time, _partition, _offset, record in heapq.merge(*readers):
            pending.append(record)
            if len(pending) == FILE_CHUNK_LINES:
                chunk = self._decode(pending)
                pending = []
                if chunk is not None:
                    yield chunk
        if pending:
            chunk = self._decode(pending)
            if chunk is not None:
                yield chunk

    def describe(self, samples: int) -> str:
        ranges = ", ".join(f"{p}:{self.start[p]}-{self.end[p]}" for p in sorted(self.start))
        skipped = f"; {self.skipped:,} undecodable messages skipped" if self.skipped else ""
        return f"{samples:,} labelled samples of topic {self.topic} (partition:offsets {ranges}{skipped})"

    def _partition(self, group: str, partition: int, start: int, end: int) -> Iterator[Entry]:
        """Messages [start, end) of one partition as merge entries, in offset order."""
        consumer = new_consumer(
            self.kafka, group, name=f"evaluate consumer p{partition}", overrides={"enable.auto.commit": False}
        )
        consumer.assign([TopicPartition(self.topic, partition, start)])
        position, deadline = start, time.monotonic() + self.timeout_s
        try:
            while position < end:
                messages = consumer.consume(1000, 0.5)
                if not messages and time.monotonic() > deadline:
                    raise UserError(
                        f"reading {self.topic} partition {partition}: no message for {self.timeout_s:g} s "
                        f"at offset {position} (end {end}); is the broker up and the range still retained?"
                    )
                for message in messages:
                    if message.error() is not None or message.offset() >= end:
                        continue
                    deadline = time.monotonic() + self.timeout_s
                    position = message.offset() + 1
                    try:
                        record = json.loads(message.value())
                        event_time = int(record["impression"]["event_time_ms"])
                    except (ValueError, TypeError, KeyError) as error:
                        self._skip(f"partition {partition} offset {message.offset()}: {error}")
                        continue
                    yield event_time, partition, message.offset(), record
        finally:
            consumer.close()

    def _decode(self, records: list[dict[str, Any]]) -> LabelledBatch | None:
        try:
            batch = self.batcher.build([sample_from_dict(r) for r in records])
            return LabelledBatch(batch, oracle_rows([r.get(ORACLE_FIELD) for r in records], self.schema.task_names))
        except (ValueError, KeyError, TypeError, AttributeError):
            pass
        kept = []
        for record in records:
            reason = sample_line_error(compact_json(record), self.batcher)
            if reason is None:
                kept.append(record)
            else:
                self._skip(f"sample {str(record.get('sample_id'))[:64]}: {reason}")
        return self._decode(kept) if kept else None

    def _skip(self, reason: str) -> None:
        self.skipped += 1
        if self.skipped <= 10:
            log.warning("skipping an undecodable message of %s (%s)", self.topic, reason)
