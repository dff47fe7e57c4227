"""The events on the wire: impressions, actions and labelled samples (JSON, keyed by user id).

These classes only carry data and convert to and from JSON; checking that an event is valid is
the job of :mod:`stream.events.validation`. All times are event times in milliseconds since the epoch.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

SparseValue = int | str | list[int | str]


@dataclass
class Impression:
    """An item shown to a user in a domain (tab) at ``event_time_ms``.

    ``labels`` is set only for pre-labelled input, which bypasses the join.
    """

    impression_id: str
    user_id: int
    item_id: int
    author_id: int
    domain: str
    event_time_ms: int
    sparse: dict[str, SparseValue] = field(default_factory=dict)
    dense: dict[str, float] = field(default_factory=dict)
    labels: dict[str, int] | None = None

    def key(self) -> bytes:
        """Kafka message key: the user id, so impressions and actions share a partition."""
        return str(self.user_id).encode()


@dataclass
class Action:
    """A user action (``action`` is a task name) on an earlier impression."""

    impression_id: str
    user_id: int
    action: str
    event_time_ms: int

    def key(self) -> bytes:
        """Kafka message key: the user id, the same partition as the user's impressions."""
        return str(self.user_id).encode()


@dataclass
class JoinInfo:
    """How a sample was labelled: the join window and what the joiner saw (event time, ms)."""

    window_ms: int
    actions_joined: int = 0
    closed_at_watermark_ms: int = 0
    source: str = "join"  # "join", "prelabelled" or "late_impression" (no labels observed)


@dataclass
class LabelledSample:
    """A training example: the impression and one label per observed task."""

    sample_id: str
    impression: Impression
    labels: dict[str, int]
    join: JoinInfo

    def key(self) -> bytes:
        """Kafka message key: the impression's user id."""
        return self.impression.key()


def encode(event: Impression | Action | LabelledSample) -> bytes:
    """Compact JSON bytes of an event."""
    return compact_json(to_dict(event))


def to_dict(event: Impression | Action | LabelledSample) -> dict[str, Any]:
    """The event as plain JSON types; shares the event's dicts (no deep copy, unlike ``asdict``)."""
    if isinstance(event, LabelledSample):
        return {
            "sample_id": event.sample_id,
            "impression": vars(event.impression),
            "labels": event.labels,
            "join": vars(event.join),
        }
    return vars(event)


def compact_json(value: Any) -> bytes:
    """JSON bytes without spaces (the encoding of everything the pipeline writes)."""
    return _ENCODER.encode(value).encode()


_ENCODER = json.JSONEncoder(separators=(",", ":"))


def json_string(text: str) -> bytes:
    """``compact_json(text)`` for a string, byte for byte; plain ASCII (ids, names) without the
    encoder's per-call cost."""
    if _NEEDS_ESCAPE(text) is None:
        return b'"' + text.encode() + b'"'
    return compact_json(text)


_NEEDS_ESCAPE = re.compile(r"[^ !#-\[\]-~]").search  # not printable ASCII, or " or \


def impression_from_dict(d: dict[str, Any]) -> Impression:
    """Build an Impression from decoded JSON without checking it (see stream.events.validation)."""
    return Impression(**d)


def action_from_dict(d: dict[str, Any]) -> Action:
    """Build an Action from decoded JSON without checking it (see stream.events.validation)."""
    return Action(**d)


def sample_from_dict(d: dict[str, Any]) -> LabelledSample:
    """Build a LabelledSample from decoded JSON without checking it (trusted samples topic)."""
    return LabelledSample(
        sample_id=d["sample_id"],
        impression=Impression(**d["impression"]),
        labels=d["labels"],
        join=JoinInfo(**d["join"]),
    )


def decode_sample(data: bytes) -> LabelledSample:
    """Decode a labelled sample written by :func:`encode` (trusted topic, no validation)."""
    return sample_from_dict(json.loads(data))
