"""Validation of raw impressions and actions: every defect gets its field and reason code."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.config.pipeline import load_config
from stream.events.formats import Action, Impression, encode
from stream.events.validation import REASONS, EventValidator, InvalidEvent, validate_action, validate_impression
from stream.joiner.config import ValidationLimits
from tests.stream.joiner.malformed_events import KINDS, corrupt, kinds_for

NOW_MS = 1_700_000_000_000


@pytest.fixture(scope="module")
def validator() -> EventValidator:
    return EventValidator(load_config(environ={}).schema)


def impression(**changes: object) -> Impression:
    base = Impression(
        "imp-1", 42, 1001, 77, "tab1", NOW_MS,
        {"video_type": "NORMAL", "tag": [3, 5], "hour_of_day": 13}, {"video_duration_s": 12.5},
    )  # fmt: skip
    for k, v in changes.items():
        setattr(base, k, v)
    return base


ACTION = Action("imp-1", 42, "like", NOW_MS + 5000)


def test_valid_events_round_trip(validator: EventValidator) -> None:
    assert validator.impression(encode(impression()), b"42", NOW_MS) == impression()
    assert validator.action(encode(ACTION), b"42", NOW_MS) == ACTION
    labelled = impression(labels={"click": 1, "like": 0})
    assert validator.impression(encode(labelled), None, NOW_MS).labels == {"click": 1, "like": 0}


def test_module_functions_use_the_schema() -> None:
    schema = load_config(environ={}).schema
    assert validate_impression(encode(impression()), schema).impression_id == "imp-1"
    with pytest.raises(InvalidEvent, match="action: unknown task"):
        validate_action(encode(Action("i", 1, "buy", NOW_MS)), schema)


@pytest.mark.parametrize("kind", list(KINDS))
def test_each_defect_is_named(validator: EventValidator, kind: str) -> None:
    event = impression() if KINDS[kind][0] else ACTION
    check = validator.impression if isinstance(event, Impression) else validator.action
    with pytest.raises(InvalidEvent) as info:
        check(corrupt(event, kind), None, NOW_MS)
    assert info.value.code == KINDS[kind][3]
    assert info.value.code in REASONS
    assert str(info.value).startswith(f"{info.value.field}: ")


def test_every_applicable_kind_is_rejected_for_actions_too(validator: EventValidator) -> None:
    for kind in kinds_for(ACTION):
        with pytest.raises(InvalidEvent):
            validator.action(corrupt(ACTION, kind), None, NOW_MS)


def test_field_names_in_messages(validator: EventValidator) -> None:
    cases = {
        "dense.video_duration_s": impression(dense={"video_duration_s": "long"}),
        "sparse.tag": impression(sparse={"tag": [1, 2, 3, 4]}),
        "sparse.video_type": impression(sparse={"video_type": 1.5}),
        "dense.bogus": impression(dense={"bogus": 1.0}),
    }
    for field, event in cases.items():
        with pytest.raises(InvalidEvent) as info:
            validator.impression(encode(event), None, NOW_MS)
        assert info.value.field == field


def test_key_must_be_the_user_id(validator: EventValidator) -> None:
    with pytest.raises(InvalidEvent) as info:
        validator.action(encode(ACTION), b"43", NOW_MS)
    assert info.value.code == "key_mismatch"
    lenient = EventValidator(load_config(environ={}).schema, ValidationLimits(require_key_match=False))
    assert lenient.action(encode(ACTION), b"43", NOW_MS) == ACTION


def test_future_bound_is_relative_to_the_wall_clock(validator: EventValidator) -> None:
    one_day = ValidationLimits().max_future_ms
    ok = encode(impression(event_time_ms=NOW_MS + one_day))
    assert validator.impression(ok, None, NOW_MS).event_time_ms == NOW_MS + one_day
    old = encode(impression(event_time_ms=1_000))  # replays of old data are fine
    assert validator.impression(old, None, NOW_MS).event_time_ms == 1_000
    with pytest.raises(InvalidEvent, match="ahead of the wall clock"):
        validator.impression(encode(impression(event_time_ms=NOW_MS + one_day + 1)), None, NOW_MS)


def test_payload_limit_is_checked_before_parsing() -> None:
    tight = EventValidator(load_config(environ={}).schema, ValidationLimits(max_payload_bytes=64))
    with pytest.raises(InvalidEvent) as info:
        tight.impression(b"x" * 65, None, NOW_MS)
    assert info.value.code == "oversized"


def test_deeply_nested_json_is_a_clean_error(validator: EventValidator) -> None:
    raw = ("[" * 100_000 + "]" * 100_000).encode()
    big = EventValidator(load_config(environ={}).schema, ValidationLimits(max_payload_bytes=10**6))
    with pytest.raises(InvalidEvent) as info:
        big.impression(raw, None, NOW_MS)
    assert info.value.code in ("bad_json", "not_object")


def test_labels_must_be_known_tasks_with_binary_values(validator: EventValidator) -> None:
    for labels, code in (({"buy": 1}, "unknown_task"), ({"click": True}, "bad_label"), ([1], "wrong_type")):
        raw = json.dumps({**json.loads(encode(impression())), "labels": labels}).encode()
        with pytest.raises(InvalidEvent) as info:
            validator.impression(raw, None, NOW_MS)
        assert info.value.code == code


_SCHEMA_VALIDATOR = EventValidator(load_config(environ={}).schema)
_SPARSE_VALUES = st.one_of(
    st.integers(min_value=-(2**64), max_value=2**64),
    st.text(max_size=140),
    st.booleans(),
    st.floats(allow_nan=True),
    st.none(),
)


@settings(max_examples=400, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["tag", "video_type", "hour_of_day", "music_type", "bogus"]),
        st.one_of(_SPARSE_VALUES, st.lists(st.one_of(_SPARSE_VALUES, st.lists(st.integers())), max_size=12)),
        max_size=5,
    )
)
def test_the_fast_sparse_check_accepts_exactly_what_the_precise_one_accepts(sparse: dict) -> None:
    validator = _SCHEMA_VALIDATOR
    try:
        validator._sparse_slow_check(sparse)
        valid = True
    except InvalidEvent:
        valid = False
    assert validator._sparse_fast_check(sparse) == valid
