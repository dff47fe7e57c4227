"""The joiner's fast path: impressions and actions decoded and validated in C by msgspec.

The wire format stays JSON. :class:`TypedEventDecoder` builds, from the feature schema and the
validation limits, msgspec ``Struct`` types whose fields and constraints encode the rules of
:mod:`stream.events.validation` (required and unknown fields, types, id ranges, string lengths,
known domains, tasks and features, ``max_values``, finite dense values, 0/1 labels). One
``msgspec.json.Decoder.decode`` call parses and checks a message with no Python per field.

Only *valid* messages take the fast path to the end. Anything msgspec rejects, and the checks
that need more than the message (the key, the wall-clock future bound), goes to the precise
:class:`~stream.events.validation.EventValidator` (``check_message_key``, then the event), which
gives the documented reason code and field, or accepts the few valid messages msgspec is
stricter about (a lone surrogate escape such as
``"\\ud800"``, a float that rounds to the largest double). So the verdict and the decoded fields
are by construction the precise validator's: the property tests (tests/stream/events/
test_typed_decoder.py) check that on generated and mutated messages.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from pepnet.schema import FeatureSchema
from stream.events.formats import Action, Impression
from stream.events.validation import EventValidator
from stream.joiner.config import MAX_EVENT_ID, ValidationLimits

_ID = Annotated[int, Meta(ge=0, le=MAX_EVENT_ID - 1)]
_TIME = Annotated[int, Meta(ge=0)]
_SIGNED_64 = Annotated[int, Meta(ge=-(2**63), le=2**63 - 1)]
# msgspec already refuses NaN/Infinity literals and numbers beyond a double; the bounds say it here too.
_FINITE = Annotated[float, Meta(ge=-sys.float_info.max, le=sys.float_info.max)]
_STRUCT_OPTIONS = {"forbid_unknown_fields": True, "gc": False}


class TypedEventDecoder:
    """Decodes and validates wire bytes; same results as :class:`EventValidator`, mostly in C.

    :meth:`impression` returns an object with the attributes of :class:`Impression`
    (``impression_id``, ``user_id``, ``event_time_ms``, ``labels``... ; ``sparse`` and ``dense``
    as msgspec Structs on the fast path) and :meth:`action` one with those of :class:`Action`;
    both raise :class:`~stream.events.validation.InvalidEvent` exactly when the precise validator does.
    """

    def __init__(self, schema: FeatureSchema, limits: ValidationLimits | None = None) -> None:
        self.precise = EventValidator(schema, limits)
        self.limits = limits = self.precise.limits
        self._max_bytes = limits.max_payload_bytes
        self._max_future_ms = limits.max_future_ms
        self._check_key = limits.require_key_match
        text = Annotated[str, Meta(max_length=limits.max_id_chars)]
        identifier = Annotated[str, Meta(min_length=1, max_length=limits.max_id_chars)]
        domain = Literal[tuple(schema.domains)]  # type: ignore[valid-type]
        task = Literal[tuple(schema.task_names)]  # type: ignore[valid-type]
        sparse_value = _SIGNED_64 | text
        sparse = _optional_fields(
            "WireSparse",
            {
                f.name: _SIGNED_64 | text | Annotated[list[sparse_value], Meta(max_length=f.max_values)]
                for f in schema.sparse
            },
        )
        dense = _optional_fields("WireDense", {f.name: _FINITE for f in schema.dense})
        self._impressions = msgspec.json.Decoder(
            msgspec.defstruct(
                "WireImpression",
                [
                    ("impression_id", identifier),
                    ("user_id", _ID),
                    ("item_id", _ID),
                    ("author_id", _ID),
                    ("domain", domain),
                    ("event_time_ms", _TIME),
                    ("sparse", sparse | UnsetType, UNSET),
                    ("dense", dense | UnsetType, UNSET),
                    ("labels", dict[task, Literal[0, 1]] | None, None),
                ],
                **_STRUCT_OPTIONS,
            )
        )
        self._actions = msgspec.json.Decoder(
            msgspec.defstruct(
                "WireAction",
                [("impression_id", identifier), ("user_id", _ID), ("action", task), ("event_time_ms", _TIME)],
                **_STRUCT_OPTIONS,
            )
        )

    def impression(self, raw: bytes, key: bytes | None = None, now_ms: int | None = None) -> Impression | Any:
        """The impression in ``raw`` (fast path: a msgspec Struct), or :class:`InvalidEvent`."""
        return self._decode(self._impressions, self.precise.impression, raw, key, now_ms)

    def action(self, raw: bytes, key: bytes | None = None, now_ms: int | None = None) -> Action | Any:
        """The action in ``raw`` (fast path: a msgspec Struct), or :class:`InvalidEvent`."""
        return self._decode(self._actions, self.precise.action, raw, key, now_ms)

    def _decode(
        self,
        decoder: msgspec.json.Decoder,
        precise: Callable[[bytes, bytes | None, int | None], Any],
        raw: bytes,
        key: bytes | None,
        now_ms: int | None,
    ) -> Any:
        if key is None:
            self.precise.check_message_key(key)  # a missing key is reported before anything else
        if raw is not None and len(raw) <= self._max_bytes:
            try:
                event = decoder.decode(raw)
            except (msgspec.ValidationError, msgspec.DecodeError):
                pass
            else:
                if self._plausible(event, key, now_ms):
                    return event
        return precise(raw, key, now_ms)

    def _plausible(self, event: Any, key: bytes | None, now_ms: int | None) -> bool:
        """The checks that need more than the message: its key and the wall clock."""
        if self._check_key and key != b"%d" % event.user_id:
            return False  # a mismatch, or no key: the precise validator decides
        now = int(time.time() * 1000) if now_ms is None else now_ms
        return event.event_time_ms <= now + self._max_future_ms


def _optional_fields(name: str, fields: dict[str, Any]) -> type[msgspec.Struct]:
    """A Struct whose fields (named as on the wire, whatever the characters) may all be absent."""
    attributes = [(f"f{i}", kind | UnsetType, UNSET) for i, kind in enumerate(fields.values())]
    rename = {f"f{i}": wire for i, wire in enumerate(fields)}
    return msgspec.defstruct(name, attributes, rename=rename, **_STRUCT_OPTIONS)
