"""What the event-time join produces: samples to emit (built from bytes) and state changes.

The join reads impressions and actions through :class:`ImpressionFields` / :class:`ActionFields`
(an :class:`~stream.events.formats.Impression`, or the typed decoder's msgspec Struct).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol

from stream.events.formats import LabelledSample, decode_sample, json_string

StateChange = tuple[str, bytes | None]  # (key, JSON record) or (key, None) = delete


class ImpressionFields(Protocol):
    """What the join reads of a valid impression (an Impression, or the typed decoder's Struct)."""

    impression_id: str
    user_id: int
    event_time_ms: int
    labels: dict[str, int] | None


class ActionFields(Protocol):
    """What the join reads of a valid action (an Action, or the typed decoder's Struct)."""

    impression_id: str
    user_id: int
    action: str
    event_time_ms: int


_SAMPLE_JSON = (
    b'{"sample_id":%s,"impression":%s,"labels":%s,'
    b'"join":{"window_ms":%d,"actions_joined":%d,"closed_at_watermark_ms":%d,"source":"%s"}}'
)


@dataclass(slots=True)
class EmittedSample:
    """A sample to produce (its JSON is built by :meth:`encode`), and the state key to delete once
    the broker has acknowledged it."""

    sample_id: str
    user_id: int
    impression_json: bytes  # the impression's JSON object as read
    labels_json: bytes
    source: str  # "join", "prelabelled" or "late_impression"
    window_ms: int
    actions_joined: int
    closed_at_watermark_ms: int
    state_key: str | None  # None: nothing pending to delete (pre-labelled or late impression)

    def key(self) -> bytes:
        """Kafka message key: the user id."""
        return b"%d" % self.user_id

    def encode(self) -> bytes:
        """The sample's JSON (docs/events.md), the impression spliced in as read; the same bytes as
        ``stream.events.formats.encode`` of the sample when the impression was written by it."""
        return _SAMPLE_JSON % (
            json_string(self.sample_id), self.impression_json, self.labels_json, self.window_ms,
            self.actions_joined, self.closed_at_watermark_ms, self.source.encode(),
        )  # fmt: skip

    @property
    def sample(self) -> LabelledSample:
        """The sample as a reader of the samples topic decodes it (tests, tools)."""
        return decode_sample(self.encode())


@dataclass
class JoinOutput:
    """What the joiner produced since the last :meth:`PartitionJoiner.drain` call."""

    changes: list[StateChange] = field(default_factory=list)
    emitted: list[EmittedSample] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)
