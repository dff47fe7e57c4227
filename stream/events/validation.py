"""Validation of raw impressions and actions read from Kafka.

Every check failure raises :class:`InvalidEvent` naming the field, a stable reason code (the
``reason`` label of the dead-letter metric) and a human-readable explanation. Nothing here ever
raises anything else on bad input: the worker turns every ``InvalidEvent`` into a dead letter.
"""

from __future__ import annotations

import json
import math
import time
from typing import Any

from pepnet.schema import FeatureSchema
from stream.events.formats import Action, Impression
from stream.joiner.config import MAX_EVENT_ID, ValidationLimits

# Stable reason codes, the label values of pepnet_dead_letters_total{reason}.
REASONS: tuple[str, ...] = (
    "oversized",
    "bad_json",
    "not_object",
    "missing_field",
    "unknown_field",
    "wrong_type",
    "non_finite",
    "id_out_of_range",
    "bad_id",
    "unknown_domain",
    "unknown_task",
    "unknown_feature",
    "too_many_values",
    "bad_label",
    "future_timestamp",
    "negative_timestamp",
    "key_mismatch",
    "missing_key",
    "future_event_time",  # raised by the join (stream.joiner.clock_skew), not by the validator
    "unknown_topic",
    "processing_error",  # not a validation failure: the worker failed on a valid-looking event
)

_IMPRESSION_FIELDS = ("impression_id", "user_id", "item_id", "author_id", "domain", "event_time_ms")
_IMPRESSION_OPTIONAL = ("sparse", "dense", "labels")
_ACTION_FIELDS = ("impression_id", "user_id", "action", "event_time_ms")
_INT_OR_STR = frozenset((int, str))
_IMPRESSION_ALLOWED = frozenset(_IMPRESSION_FIELDS + _IMPRESSION_OPTIONAL)
_ACTION_ALLOWED = frozenset(_ACTION_FIELDS)
_SIGNED_64 = 2**63


class InvalidEvent(ValueError):
    """An event that fails validation: ``field`` (dotted path), ``code`` (reason code), ``reason``."""

    def __init__(self, field: str, reason: str, code: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason
        self.code = code


class EventValidator:
    """Checks raw bytes against the feature schema and the limits; returns typed events.

    ``now_ms`` (wall clock, ms) is only used for the generous ``max_future_ms`` bound; pass a
    fixed value for reproducible checks.
    """

    def __init__(self, schema: FeatureSchema, limits: ValidationLimits | None = None) -> None:
        self.limits = limits or ValidationLimits()
        self._domains = frozenset(schema.domains)
        self._tasks = frozenset(schema.task_names)
        self._sparse_width = {f.name: f.max_values for f in schema.sparse}
        self._dense = frozenset(f.name for f in schema.dense)

    def impression(self, raw: bytes, key: bytes | None = None, now_ms: int | None = None) -> Impression:
        """A valid :class:`Impression` from its wire bytes, or :class:`InvalidEvent`."""
        d = self._object(raw)
        _require_fields(d, _IMPRESSION_FIELDS, _IMPRESSION_ALLOWED)
        impression_id = self._identifier(d, "impression_id")
        user_id = _id(d, "user_id")
        self._check_key(key, user_id)
        item_id = _id(d, "item_id")
        author_id = _id(d, "author_id")
        domain = d["domain"]
        if not isinstance(domain, str):
            raise InvalidEvent("domain", f"expected a string, got {_type(domain)}", "wrong_type")
        if domain not in self._domains:
            raise InvalidEvent("domain", f"unknown domain {domain[:64]!r}", "unknown_domain")
        event_time_ms = self._event_time(d, now_ms)
        sparse = self._sparse(d.get("sparse", {}))
        dense = self._dense_values(d.get("dense", {}))
        labels = self._labels(d.get("labels"))
        return Impression(impression_id, user_id, item_id, author_id, domain, event_time_ms, sparse, dense, labels)

    def action(self, raw: bytes, key: bytes | None = None, now_ms: int | None = None) -> Action:
        """A valid :class:`Action` from its wire bytes, or :class:`InvalidEvent`."""
        d = self._object(raw)
        _require_fields(d, _ACTION_FIELDS, _ACTION_ALLOWED)
        impression_id = self._identifier(d, "impression_id")
        user_id = _id(d, "user_id")
        self._check_key(key, user_id)
        action = d["action"]
        if not isinstance(action, str):
            raise InvalidEvent("action", f"expected a task name (string), got {_type(action)}", "wrong_type")
        if action not in self._tasks:
            raise InvalidEvent("action", f"unknown task {action[:64]!r}", "unknown_task")
        return Action(impression_id, user_id, action, self._event_time(d, now_ms))

    def _object(self, raw: bytes) -> dict[str, Any]:
        if raw is None:
            raise InvalidEvent("value", "empty message (no value)", "bad_json")
        if len(raw) > self.limits.max_payload_bytes:
            raise InvalidEvent(
                "value", f"{len(raw)} bytes exceeds max_payload_bytes {self.limits.max_payload_bytes}",
                "oversized",
            )  # fmt: skip
        try:
            # Strict UTF-8 (json.loads would also take UTF-16/32, a BOM and encoded surrogates, which
            # the joiner cannot splice into the UTF-8 JSON of a sample or state record).
            d = json.loads(raw.decode() if isinstance(raw, bytes | bytearray) else raw)
        except (UnicodeDecodeError, ValueError) as e:
            raise InvalidEvent("value", f"not valid UTF-8 JSON: {str(e)[:120]}", "bad_json") from None
        except RecursionError:
            raise InvalidEvent("value", "JSON nested too deeply", "bad_json") from None
        if not isinstance(d, dict):
            raise InvalidEvent("value", f"expected a JSON object, got {_type(d)}", "not_object")
        return d

    def _identifier(self, d: dict[str, Any], name: str) -> str:
        value = d[name]
        if not isinstance(value, str):
            raise InvalidEvent(name, f"expected a string, got {_type(value)}", "wrong_type")
        if not value or len(value) > self.limits.max_id_chars:
            raise InvalidEvent(name, f"must have 1..{self.limits.max_id_chars} characters", "bad_id")
        return value

    def check_message_key(self, key: bytes | None) -> None:
        """A Kafka message must have a key (the user id) when ``require_key_match``: without one it
        lands in an arbitrary partition, away from the rest of its user's events."""
        if key is None and self.limits.require_key_match:
            raise InvalidEvent("key", "the message has no key; it must be the user id (co-partitioning)", "missing_key")

    def _check_key(self, key: bytes | None, user_id: int) -> None:
        if self.limits.require_key_match and key is not None and key != str(user_id).encode():
            raise InvalidEvent(
                "key", f"message key {key[:32]!r} is not the user id {user_id} (breaks co-partitioning)",
                "key_mismatch",
            )  # fmt: skip

    def _event_time(self, d: dict[str, Any], now_ms: int | None) -> int:
        value = d["event_time_ms"]
        if not _is_int(value):
            raise InvalidEvent("event_time_ms", f"expected an integer (ms), got {_type(value)}", "wrong_type")
        if value < 0:
            raise InvalidEvent("event_time_ms", f"must be >= 0, got {value}", "negative_timestamp")
        now = int(time.time() * 1000) if now_ms is None else now_ms
        if value > now + self.limits.max_future_ms:
            raise InvalidEvent(
                "event_time_ms",
                f"{value} is {value - now} ms ahead of the wall clock (max_future_ms {self.limits.max_future_ms})",
                "future_timestamp",
            )
        return value

    def _sparse(self, sparse: Any) -> dict[str, Any]:
        if not isinstance(sparse, dict):
            raise InvalidEvent("sparse", f"expected an object, got {_type(sparse)}", "wrong_type")
        if not self._sparse_fast_check(sparse):
            self._sparse_slow_check(sparse)  # raises the precise error of the first bad feature
        return sparse

    def _sparse_fast_check(self, sparse: dict[str, Any]) -> bool:
        """True if every sparse value is plainly valid; checked with set and builtin operations
        (the joiner's hot path), so a False only means "look closer"."""
        if not sparse.keys() <= self._sparse_width.keys():
            return False
        values = list(sparse.values())
        lists = [(name, v) for name, v in sparse.items() if type(v) is list]
        if lists:
            width = self._sparse_width
            if any(len(v) > width[name] for name, v in lists):
                return False
            values = [v for v in values if type(v) is not list]
            for _, v in lists:
                values += v
        kinds = set(map(type, values))
        if not kinds <= _INT_OR_STR:
            return False
        if int in kinds:
            ints = [v for v in values if type(v) is int]
            if min(ints) < -_SIGNED_64 or max(ints) >= _SIGNED_64:
                return False
        return str not in kinds or max(len(v) for v in values if type(v) is str) <= self.limits.max_id_chars

    def _sparse_slow_check(self, sparse: dict[str, Any]) -> None:
        for name, value in sparse.items():
            width = self._sparse_width.get(name)
            if width is None:
                raise InvalidEvent(f"sparse.{name[:64]}", "not a sparse feature of the schema", "unknown_feature")
            values = value if isinstance(value, list) else (value,)
            if len(values) > width:
                raise InvalidEvent(f"sparse.{name}", f"{len(values)} values, max_values is {width}", "too_many_values")
            for v in values:
                self._sparse_value(name, v)

    def _sparse_value(self, name: str, value: Any) -> None:
        if _is_int(value):
            if not -_SIGNED_64 <= value < _SIGNED_64:
                raise InvalidEvent(f"sparse.{name}", f"{value} does not fit 64 bits", "id_out_of_range")
        elif isinstance(value, str):
            if len(value) > self.limits.max_id_chars:
                raise InvalidEvent(
                    f"sparse.{name}", f"string longer than {self.limits.max_id_chars} characters", "bad_id"
                )
        else:
            raise InvalidEvent(
                f"sparse.{name}", f"expected an integer, a string or a list of them, got {_type(value)}",
                "wrong_type",
            )  # fmt: skip

    def _dense_values(self, dense: Any) -> dict[str, float]:
        if not isinstance(dense, dict):
            raise InvalidEvent("dense", f"expected an object, got {_type(dense)}", "wrong_type")
        out: dict[str, float] = {}
        for name, value in dense.items():
            if name not in self._dense:
                raise InvalidEvent(f"dense.{name[:64]}", "not a dense feature of the schema", "unknown_feature")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidEvent(f"dense.{name}", f"expected a number, got {_type(value)}", "wrong_type")
            try:
                value = float(value)
            except OverflowError:  # an integer beyond the largest double
                value = math.inf
            if not math.isfinite(value):
                raise InvalidEvent(f"dense.{name}", f"must be finite, got {value}", "non_finite")
            out[name] = value
        return out

    def _labels(self, labels: Any) -> dict[str, int] | None:
        if labels is None:
            return None
        if not isinstance(labels, dict):
            raise InvalidEvent("labels", f"expected an object or null, got {_type(labels)}", "wrong_type")
        for task, value in labels.items():
            if task not in self._tasks:
                raise InvalidEvent(f"labels.{task[:64]}", "unknown task", "unknown_task")
            if not _is_int(value) or value not in (0, 1):
                raise InvalidEvent(f"labels.{task}", f"must be 0 or 1, got {value!r}", "bad_label")
        return labels


def validate_impression(
    raw: bytes, schema: FeatureSchema, limits: ValidationLimits | None = None, key: bytes | None = None
) -> Impression:
    """One-off validation of an impression (workers keep an :class:`EventValidator`)."""
    return EventValidator(schema, limits).impression(raw, key)


def validate_action(
    raw: bytes, schema: FeatureSchema, limits: ValidationLimits | None = None, key: bytes | None = None
) -> Action:
    """One-off validation of an action (workers keep an :class:`EventValidator`)."""
    return EventValidator(schema, limits).action(raw, key)


def _require_fields(d: dict[str, Any], required: tuple[str, ...], allowed: frozenset[str]) -> None:
    for name in required:
        if name not in d:
            raise InvalidEvent(name, "required field is missing", "missing_field")
    if d.keys() <= allowed:
        return
    for name in d:
        if name not in allowed:
            raise InvalidEvent(str(name)[:64], "unknown field", "unknown_field")


def _id(d: dict[str, Any], name: str) -> int:
    value = d[name]
    if not _is_int(value):
        raise InvalidEvent(name, f"expected an integer, got {_type(value)}", "wrong_type")
    if not 0 <= value < MAX_EVENT_ID:
        raise InvalidEvent(name, f"must be in [0, 2^63), got {value}", "id_out_of_range")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__
