"""The msgspec fast path gives exactly the precise validator's verdicts, reason codes and fields."""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.config.pipeline import load_config
from stream.events.formats import Action, Impression, encode
from stream.events.typed_decoder import TypedEventDecoder
from stream.events.validation import EventValidator, InvalidEvent
from stream.joiner.config import ValidationLimits
from stream.simulator import EventSimulator
from tests.stream.joiner.malformed_events import KINDS, corrupt, kinds_for

NOW_MS = 1_700_000_000_000
SCHEMA = load_config(environ={}).schema
LIMITS = ValidationLimits(max_id_chars=16, max_payload_bytes=4096)  # small bounds, so that both sides get hit
DECODER = TypedEventDecoder(SCHEMA, LIMITS)
PRECISE = EventValidator(SCHEMA, LIMITS)

IMPRESSION = Impression(
    "imp-1", 42, 1001, 77, "tab1", NOW_MS,
    {"video_type": "NORMAL", "tag": [3, 5], "hour_of_day": 13}, {"video_duration_s": 12.5, "item_age_hours": 3},
)  # fmt: skip
ACTION = Action("imp-1", 42, "like", NOW_MS + 5000)


def outcome(check: Any, raw: bytes, key: bytes | None, now_ms: int) -> tuple:
    """("ok", the event as plain JSON types) or ("invalid", code, field, message)."""
    try:
        event = check(raw, key, now_ms)
    except InvalidEvent as e:
        return ("invalid", e.code, e.field, str(e))
    except Exception as e:  # the worker dead-letters these as processing_error: must match too
        return ("error", type(e).__name__)
    plain = msgspec.to_builtins(event) if isinstance(event, msgspec.Struct) else vars(event)
    plain = {k: v for k, v in plain.items() if k not in ("sparse", "dense")}
    sparse, dense = (_plain(getattr(event, name, {})) for name in ("sparse", "dense"))
    return ("ok", plain, sparse, {k: float(v) for k, v in dense.items()})


def _plain(value: Any) -> dict[str, Any]:
    """A fast-path Struct (absent: UNSET) or a precise dict, as a dict keyed by wire names."""
    if value is msgspec.UNSET:
        return {}
    return msgspec.to_builtins(value) if isinstance(value, msgspec.Struct) else value


def precise(check: Any) -> Any:
    """The precise path as the worker ran it: the message key first, then the event."""

    def validate(raw: bytes, key: bytes | None, now_ms: int) -> Any:
        PRECISE.check_message_key(key)
        return check(raw, key, now_ms)

    return validate


def assert_same(raw: bytes, key: bytes | None = b"42", now_ms: int = NOW_MS, impression: bool = True) -> tuple:
    kind = "impression" if impression else "action"
    fast = outcome(getattr(DECODER, kind), raw, key, now_ms)
    assert fast == outcome(precise(getattr(PRECISE, kind)), raw, key, now_ms), raw
    return fast


def test_simulated_events_take_the_fast_path_and_decode_alike() -> None:
    config = load_config(environ={})
    decoder = TypedEventDecoder(config.schema)
    precise = EventValidator(config.schema)
    fast = 0
    for event in EventSimulator(config.simulator, config.schema).events(500):
        raw, kind = encode(event), "impression" if isinstance(event, Impression) else "action"
        got = outcome(getattr(decoder, kind), raw, event.key(), NOW_MS)
        assert got[0] == "ok" and got == outcome(getattr(precise, kind), raw, event.key(), NOW_MS)
        fast += isinstance(getattr(decoder, kind)(raw, event.key(), NOW_MS), msgspec.Struct)
    assert fast > 700  # every one of them: nothing fell back to the precise path


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_documented_defect_gets_the_same_reason(kind: str) -> None:
    for event in (IMPRESSION, ACTION):
        if kind in kinds_for(event):
            got = assert_same(corrupt(event, kind), b"42", impression=isinstance(event, Impression))
            assert got[1] == KINDS[kind][3]


def test_key_and_wall_clock_checks() -> None:
    raw = encode(IMPRESSION)
    assert assert_same(raw, b"43")[1] == "key_mismatch"
    assert assert_same(raw, None)[1] == "missing_key"
    assert assert_same(b"garbage", None)[1] == "missing_key"  # reported before anything else
    assert assert_same(raw, b"42", NOW_MS - LIMITS.max_future_ms)[0] == "ok"  # exactly at the bound
    assert assert_same(raw, b"42", NOW_MS - LIMITS.max_future_ms - 1)[1] == "future_timestamp"
    lenient = TypedEventDecoder(SCHEMA, ValidationLimits(require_key_match=False))
    assert isinstance(lenient.action(encode(ACTION), b"nope", NOW_MS), msgspec.Struct)
    assert lenient.action(encode(ACTION), None, NOW_MS).user_id == 42


def test_edge_cases_msgspec_is_stricter_about_still_match() -> None:
    base = json.loads(encode(IMPRESSION))
    cases = [
        {**base, "impression_id": "\ud800"},  # lone surrogate: valid for json, rejected by msgspec
        {**base, "dense": {"video_duration_s": 10**400}},  # beyond a double: non_finite
        {**base, "dense": {"video_duration_s": 1e308 * 10}},
        {**base, "labels": {"click": True}},
        {**base, "labels": {}},
        {**base, "sparse": {"tag": []}},
        {**base, "sparse": {"tag": [2**63]}},
        {**base, "sparse": {"tag": [-(2**63)]}},
        {**base, "user_id": 2**63 - 1},
        {**base, "user_id": 2**63},
    ]
    for case in cases:
        assert_same(json.dumps(case).encode())
    for raw in (
        b'{"impression_id":"a","impression_id":"imp-1"' + encode(IMPRESSION)[len(b'{"impression_id":"imp-1"') :],
        b"\xef\xbb\xbf" + encode(IMPRESSION),  # BOM: not UTF-8 JSON
        encode(IMPRESSION).decode().encode("utf-16"),
        encode(IMPRESSION).replace(b"NORMAL", b"NOR\xed\xa0\x80MAL"),  # an encoded surrogate
        encode(IMPRESSION).replace(b"12.5", b"1.7976931348623159e308"),  # rounds to the largest double
        encode(IMPRESSION).replace(b"12.5", b"NaN"),
        b" " + encode(IMPRESSION) + b"\n",
    ):
        assert_same(raw)


BOUNDARY_VALUES = [
    None, True, False, 0, 1, -1, 3, 1.0, 0.5, "", "1", "tab1", "tab99", "click", "x" * 16, "x" * 17, "\ud800",
    2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 2**64, 10**400, NOW_MS, NOW_MS + 1, float("nan"), float("inf"), [], [1],
    [1, 2, 3], [1, 2, 3, 4], ["a", 2], [[1]], {}, {"click": 1},
]  # fmt: skip


def test_every_field_at_its_boundaries() -> None:
    """Each field of each object set to each boundary value, with and without a key."""
    base = json.loads(encode(IMPRESSION))
    targets = [(None, name) for name in [*base, "extra"]]
    targets += [("sparse", f.name) for f in SCHEMA.sparse] + [("dense", f.name) for f in SCHEMA.dense]
    targets += [("labels", task) for task in SCHEMA.task_names]
    for parent, name in targets:
        for value in BOUNDARY_VALUES:
            d = json.loads(encode(IMPRESSION))
            if parent is None:
                d[name] = value
            else:
                d[parent] = {**(d.get(parent) or {}), name: value}
            for key in (None, b"42"):
                assert_same(_dumps(d), key)
    for name in ("impression_id", "user_id", "action", "event_time_ms", "extra"):
        for value in BOUNDARY_VALUES:
            assert_same(_dumps({**json.loads(encode(ACTION)), name: value}), None, impression=False)


# -- properties ------------------------------------------------------------------------------

_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, 1, 2, -1, 2**63 - 1, 2**63, -(2**63), -(2**63) - 1, NOW_MS, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["", "tab1", "tab99", "click", "like", "x" * 16, "x" * 17, "\ud800", "é" * 16]),
)
_JSON_VALUES = st.recursive(
    _JSON_SCALARS,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
_IMPRESSION_FIELDS = ["impression_id", "user_id", "item_id", "author_id", "domain", "event_time_ms"]
_SPARSE_NAMES = [f.name for f in SCHEMA.sparse] + ["bogus"]
_DENSE_NAMES = [f.name for f in SCHEMA.dense] + ["bogus"]


@st.composite
def mutated_impressions(draw: st.DrawFn) -> dict[str, Any]:
    d = json.loads(encode(IMPRESSION))
    for _ in range(draw(st.integers(0, 3))):
        field = draw(st.sampled_from([*_IMPRESSION_FIELDS, "sparse", "dense", "labels", "extra"]))
        action = draw(st.sampled_from(["set", "drop", "inner"]))
        if action == "drop":
            d.pop(field, None)
        elif action == "inner" and field in ("sparse", "dense", "labels"):
            names = {"sparse": _SPARSE_NAMES, "dense": _DENSE_NAMES, "labels": [*SCHEMA.task_names, "buy"]}[field]
            inner = d.get(field) if isinstance(d.get(field), dict) else {}
            value = draw(st.one_of(_JSON_VALUES, st.lists(_JSON_SCALARS, max_size=5), st.sampled_from([0, 1])))
            d[field] = {**inner, draw(st.sampled_from(names)): value}
        else:
            d[field] = draw(_JSON_VALUES)
    return d


def _dumps(d: Any) -> bytes:
    return json.dumps(d, allow_nan=True).encode("utf-8", "surrogatepass")


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_impressions(), st.sampled_from([b"42", None, b"7"]), st.sampled_from([NOW_MS, NOW_MS - 10**9]))
def test_fast_path_equals_the_precise_one_on_mutated_impressions(d: dict, key: bytes | None, now_ms: int) -> None:
    assert_same(_dumps(d), key, now_ms)


@settings(max_examples=800, deadline=None)
@given(
    st.fixed_dictionaries(
        {},
        optional={
            "impression_id": _JSON_VALUES,
            "user_id": _JSON_VALUES,
            "action": st.one_of(_JSON_VALUES, st.sampled_from(SCHEMA.task_names)),
            "event_time_ms": st.one_of(_JSON_VALUES, st.integers(0, 2 * NOW_MS)),
            "extra": _JSON_VALUES,
        },
    ),
    st.sampled_from([b"42", None]),
)
def test_fast_path_equals_the_precise_one_on_actions(d: dict, key: bytes | None) -> None:
    assert_same(_dumps({"impression_id": "i", "user_id": 42, "action": "click", "event_time_ms": NOW_MS, **d}), key,
                impression=False)  # fmt: skip


@settings(max_examples=1000, deadline=None)
@given(st.integers(0, 10**6), st.binary(max_size=6), st.integers(0, 3))
def test_fast_path_equals_the_precise_one_on_damaged_bytes(position: int, junk: bytes, cut: int) -> None:
    """Bytes inserted, replaced or cut anywhere in a valid message: the same verdict either way."""
    for raw in (encode(IMPRESSION), encode(ACTION)):
        at = position % (len(raw) + 1)
        damaged = raw[:at] + junk + raw[at + cut :]
        assert_same(damaged, b"42", impression=raw.startswith(b'{"impression_id":"imp-1","user_id":42,"item_id"'))


def test_outcome_helper_sees_float_values() -> None:
    got = assert_same(encode(IMPRESSION))
    assert got[3] == {"video_duration_s": 12.5, "item_age_hours": 3.0} and not math.isnan(got[3]["item_age_hours"])
