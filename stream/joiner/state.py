"""The joiner's persistent state records: what one partition keeps in the changelog-backed table.

Keys are strings prefixed by the input partition (``"<p>:"``), so the records of a partition can
be told apart after a restore, and every record of partition ``p`` goes to changelog partition
``p`` (written in order, so a restore always sees a prefix of the writes).

* ``<p>:clock`` -> :class:`StreamClock` (stream times and last applied offsets of both inputs).
* ``<p>:i:<impression_id>`` -> a pending impression and the actions attached to it so far.
* ``<p>:a:<impression_id>`` -> actions read before their impression (waiting for it).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from stream.events.formats import Impression, compact_json, impression_from_dict

STATE_TABLE = "joiner-state"
NO_TIME = -1  # no event read yet on that input
NO_OFFSET = -1

ActionKey = tuple[str, int]  # (task name, action event time ms): an action counted once


@dataclass
class StreamClock:
    """Event-time progress of one partition's two inputs (ms of event time, Kafka offsets)."""

    impressions_time_ms: int = NO_TIME  # stream time of impressions partition p (stream.joiner.clock_skew)
    actions_time_ms: int = NO_TIME  # stream time of actions partition p
    impressions_offset: int = NO_OFFSET  # last offset applied to this state
    actions_offset: int = NO_OFFSET
    closed_to_ms: int = NO_TIME  # watermark floor set by an idle close
    # Per input: [user id, event time] of users far ahead of its stream time (stream.joiner.clock_skew).
    impressions_votes: list[list[int]] = field(default_factory=list)
    actions_votes: list[list[int]] = field(default_factory=list)

    @property
    def watermark_ms(self) -> int:
        """The partition's watermark: the slower input's stream time (or the idle-close floor)."""
        return max(self.closed_to_ms, min(self.impressions_time_ms, self.actions_time_ms))

    def to_record(self) -> dict[str, Any]:
        record = asdict(self)
        for name in ("impressions_votes", "actions_votes"):
            if not record[name]:
                del record[name]  # the usual case: keep the record as small as it was
        return record

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> StreamClock:
        return cls(**record)


@dataclass
class PendingImpression:
    """An impression waiting for its join window to close, with the distinct actions seen.

    ``impression_json`` is the impression's JSON object as read from the wire (validated): it is
    spliced into the state record and the sample instead of encoding the impression again, the
    largest cost of the join otherwise. Without it (tests, tools) the impression is encoded once.
    """

    impression: Impression
    actions: set[ActionKey] = field(default_factory=set)
    impression_json: bytes = b""

    def __post_init__(self) -> None:
        if not self.impression_json:
            self.impression_json = compact_json(vars(self.impression))

    def to_record(self) -> bytes:
        """The state record as JSON bytes: ``{"impression": {...}, "actions": [[task, time_ms], ...]}``."""
        actions = compact_json(sorted(self.actions)) if self.actions else b"[]"
        return b'{"impression":' + self.impression_json + b',"actions":' + actions + b"}"

    @classmethod
    def from_record(cls, record: dict[str, Any] | bytes) -> PendingImpression:
        record = as_record(record)
        return cls(impression_from_dict(record["impression"]), {(a, t) for a, t in record["actions"]})


def clock_key(partition: int) -> str:
    return f"{partition}:clock"


def pending_key(partition: int, impression_id: str) -> str:
    return f"{partition}:i:{impression_id}"


def early_key(partition: int, impression_id: str) -> str:
    return f"{partition}:a:{impression_id}"


def changelog_topic_name(app_id: str) -> str:
    """The compacted topic holding the state records of app ``app_id`` (faust's naming, shared by both engines)."""
    return f"{app_id}-{STATE_TABLE}-changelog"


def encode_state_key(key: str) -> bytes:
    """A state key as a changelog message key (JSON string)."""
    return compact_json(key)


def encode_record(record: dict[str, Any]) -> bytes:
    """A state record (clock, early actions) as JSON bytes."""
    return compact_json(record)


def decode_state_record(key: bytes, value: bytes | None) -> tuple[str, dict[str, Any] | None]:
    """A changelog message as (state key, record); a tombstone gives ``None``."""
    return json.loads(key), None if value is None else json.loads(value)


def as_record(record: dict[str, Any] | bytes) -> dict[str, Any]:
    """A record as a dict, whether decoded already (a faust table) or still JSON bytes."""
    return json.loads(record) if isinstance(record, bytes) else record
