"""What ``pepnet score`` reads: impressions or labelled samples from a JSON-lines file or a topic."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from confluent_kafka import TopicPartition

from pepnet.schema import FeatureSchema
from stream.config.errors import UserError
from stream.events.formats import Impression, JoinInfo, LabelledSample
from stream.events.validation import EventValidator, InvalidEvent
from stream.kafka.clients import new_consumer
from stream.kafka.config import KafkaConfig
from stream.trainer.sample_reader import partition_offsets

log = logging.getLogger(__name__)


class ScoringInput:
    """Validates what ``pepnet score`` reads against the model's schema (the joiner's rules,
    :mod:`stream.events.validation`): an impression as on the impressions topic, or a labelled
    sample as on the samples topic (its ``impression`` holds the impression, ``labels`` the labels)."""

    def __init__(self, schema: FeatureSchema) -> None:
        self.validator = EventValidator(schema)

    def parse(self, raw: bytes) -> Impression | LabelledSample:
        """One JSON object; :class:`InvalidEvent` names the field (``impression.domain``...) and why."""
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, ValueError) as error:
            raise InvalidEvent("line", f"not valid UTF-8 JSON ({str(error)[:120]})", "bad_json") from None
        if not isinstance(data, dict) or "impression" not in data:
            return self.validator.impression(raw)
        nested = data["impression"]
        if not isinstance(nested, dict):
            raise InvalidEvent("impression", "expected an object (the impression of the sample)", "wrong_type")
        # The labels ride along with the impression, so that they are checked by the same rules.
        try:
            impression = self.validator.impression(json.dumps({**nested, "labels": data.get("labels")}).encode())
        except InvalidEvent as error:
            field = "labels" + error.field[len("labels") :] if error.field.startswith("labels") else error.field
            raise InvalidEvent(field if field.startswith("labels") else f"impression.{field}", error.reason,
                               error.code) from None  # fmt: skip
        return LabelledSample(
            str(data.get("sample_id") or impression.impression_id), replace(impression, labels=None),
            dict(impression.labels or {}), JoinInfo(window_ms=0, source="score"),
        )  # fmt: skip


def read_jsonl(path: str | Path, schema: FeatureSchema) -> Iterator[Impression | LabelledSample]:
    """Impressions or labelled samples, one JSON object per line; a bad line stops the read with a
    one-line UserError naming the file, the line, the field and the reason."""
    scoring_input = ScoringInput(schema)
    try:
        with open(path, "rb") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    yield scoring_input.parse(line)
                except InvalidEvent as error:
                    raise UserError(
                        f"{path}:{number}: {error}; each line must be an impression or a labelled sample "
                        "(docs/events.md)"
                    ) from None
    except FileNotFoundError:
        raise UserError(f"input file {path} not found") from None


def read_topic(
    kafka: KafkaConfig, topic: str, schema: FeatureSchema, limit: int = 0, timeout_s: float = 30.0
) -> Iterator[Impression | LabelledSample]:
    """Impressions or samples of ``topic`` from its beginning to its end when called (at most
    ``limit``, 0 = all), read with a throw-away group that commits nothing; invalid messages are
    skipped with a warning naming the field."""
    scoring_input = ScoringInput(schema)
    watermarks = partition_offsets(kafka, topic)
    end = {p: high for p, (_low, high) in watermarks.items()}
    group = f"pepnet-score-{uuid.uuid4().hex[:8]}"
    consumer = new_consumer(kafka, group, name=f"{topic} reader", overrides={"enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, p, low) for p, (low, high) in watermarks.items() if high > low])
    position = {p: low for p, (low, _high) in watermarks.items()}
    count = 0
    deadline = time.monotonic() + timeout_s
    try:
        while any(position[p] < end[p] for p in end) and (not limit or count < limit):
            messages = consumer.consume(1000, 0.5)
            if not messages and time.monotonic() > deadline:
                raise UserError(f"reading {topic}: no message for {timeout_s:g} s before its end offsets")
            for message in messages:
                if message.error() is not None or message.offset() >= end[message.partition()]:
                    continue
                deadline = time.monotonic() + timeout_s
                position[message.partition()] = message.offset() + 1
                try:
                    yield scoring_input.parse(message.value())
                except InvalidEvent as error:
                    log.warning("skipping an invalid message of %s[%d]@%d: %s", topic, message.partition(),
                                message.offset(), error)  # fmt: skip
                    continue
                count += 1
                if limit and count >= limit:
                    return
    finally:
        consumer.close()
