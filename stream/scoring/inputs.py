"""What ``pepnet score`` reads: impressions or labelled samples from a JSON-lines file or a topic."""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from confluent_kafka import TopicPartition

from stream.config.errors import UserError
from stream.events.formats import Impression, LabelledSample, impression_from_dict, sample_from_dict
from stream.kafka.clients import new_consumer
from stream.kafka.config import KafkaConfig
from stream.trainer.sample_reader import partition_offsets

log = logging.getLogger(__name__)


def parse_event(data: dict[str, Any]) -> Impression | LabelledSample:
    """An impression or a labelled sample (it has an ``impression`` field) from decoded JSON."""
    return sample_from_dict(data) if "impression" in data else impression_from_dict(data)


def read_jsonl(path: str | Path) -> Iterator[Impression | LabelledSample]:
    """Impressions or labelled samples, one JSON object per line; UserError names a bad line."""
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, start=1):
                if not line.strip():
                    continue
                try:
                    yield parse_event(json.loads(line))
                except (ValueError, TypeError, KeyError) as error:
                    raise UserError(f"{path}:{number}: not an impression or labelled sample ({error})") from None
    except FileNotFoundError:
        raise UserError(f"input file {path} not found") from None


def read_topic(
    kafka: KafkaConfig, topic: str, limit: int = 0, timeout_s: float = 30.0
) -> Iterator[Impression | LabelledSample]:
    """Impressions or samples of ``topic`` from its beginning to its end when called (at most
    ``limit``, 0 = all), read with a throw-away group that commits nothing."""
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
                    yield parse_event(json.loads(message.value()))
                except (ValueError, TypeError, KeyError) as error:
                    log.warning("skipping an undecodable message of %s: %s", topic, error)
                    continue
                count += 1
                if limit and count >= limit:
                    return
    finally:
        consumer.close()
