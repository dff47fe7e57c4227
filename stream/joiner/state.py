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

import msgspec

from stream.events.formats import compact_json, json_string

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


class PendingImpression(msgspec.Struct, gc=False, order=True):
    """An impression waiting for its join window to close, held compactly: the event time at
    which its window closes, its id (the same str object as its key in the pending dict), its
    JSON object as read from the wire (validated; spliced into the state record and the sample,
    never re-encoded) and the distinct actions attached so far (usually none or one). The user
    id and the event time are read back from the JSON or the deadline when needed rather than
    held (~40 bytes each).

    It is its own entry in the close heap: ordered like a tuple of its fields, so ``heapq``
    compares ``(deadline_ms, impression_id)`` in C, and no (deadline, id) tuple is held beside it
    (56 bytes). A msgspec Struct without garbage-collector tracking (it holds no reference
    cycle): 48 bytes instead of a slotted object's 64, and the cyclic collector never scans the
    tens of thousands alive. About 0.8 KiB in memory with a 560-byte impression and its
    bookkeeping (benchmarks/joiner.py prints it), where the impression as Python objects took
    ~4 KiB.
    """

    deadline_ms: int  # event time + window + grace, ms: when the watermark closes it (first: the heap order)
    impression_id: str  # second: ties broken by id, as the heap's (deadline, id) tuples did
    impression_json: bytes
    actions: tuple[ActionKey, ...] = ()  # a tuple: the empty one is shared, a small one costs less than a set

    @property
    def user_id(self) -> int:
        """The impression's user id, read from its JSON (only when its sample is emitted)."""
        return _IMPRESSION_USER.decode(self.impression_json).user_id

    def to_record(self) -> bytes:
        """The state record as JSON bytes: ``{"impression": {...}, "actions": [[task, time_ms], ...]}``."""
        if not self.actions:
            return b'{"impression":' + self.impression_json + b',"actions":[]}'
        actions = b",".join(b"[%s,%d]" % (json_string(task), t) for task, t in sorted(self.actions))
        return b'{"impression":' + self.impression_json + b',"actions":[' + actions + b"]}"

    @classmethod
    def from_record(cls, record: dict[str, Any] | bytes, close_after_ms: int) -> PendingImpression:
        """The pending impression of a state record, as JSON bytes (the impression's
        bytes are kept as written) or decoded already (a faust table: the impression is re-encoded);
        ``close_after_ms``: window + grace (ms)."""
        if isinstance(record, bytes | bytearray):
            stored = _PENDING_RECORD.decode(record)
            impression_json = bytes(stored.impression)
            head = _IMPRESSION_HEAD.decode(impression_json)
            impression_id, event_time_ms = head.impression_id, head.event_time_ms
            actions = stored.actions
        else:
            impression = record["impression"]
            impression_json = compact_json(impression)
            impression_id, event_time_ms = impression["impression_id"], impression["event_time_ms"]
            actions = record["actions"]
        return cls(event_time_ms + close_after_ms, impression_id, impression_json, tuple((a, t) for a, t in actions))


class _PendingRecord(msgspec.Struct, gc=False):
    impression: msgspec.Raw  # the impression's bytes exactly as written
    actions: list[tuple[str, int]]


class _ImpressionHead(msgspec.Struct, gc=False):  # other fields are ignored
    impression_id: str
    event_time_ms: int


class _ImpressionUser(msgspec.Struct, gc=False):
    user_id: int


_PENDING_RECORD = msgspec.json.Decoder(_PendingRecord)
_IMPRESSION_HEAD = msgspec.json.Decoder(_ImpressionHead)
_IMPRESSION_USER = msgspec.json.Decoder(_ImpressionUser)


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
    return json_string(key)


def encode_record(record: dict[str, Any]) -> bytes:
    """A state record (clock, early actions) as JSON bytes."""
    return compact_json(record)


def decode_state_key(key: bytes) -> str:
    """A changelog message key as a state key."""
    return json.loads(key)


def decode_state_record(key: bytes, value: bytes | None) -> tuple[str, dict[str, Any] | None]:
    """A changelog message as (state key, record); a tombstone gives ``None``."""
    return json.loads(key), None if value is None else json.loads(value)


def as_record(record: dict[str, Any] | bytes) -> dict[str, Any]:
    """A record as a dict, whether decoded already (a faust table) or still JSON bytes."""
    return json.loads(record) if isinstance(record, bytes) else record
