"""JSON encoding of events: compact, and lossless through the decoders."""

import dataclasses
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.events.formats import (
    Action,
    Impression,
    JoinInfo,
    LabelledSample,
    action_from_dict,
    compact_json,
    decode_sample,
    encode,
    impression_from_dict,
    json_string,
)


def impression() -> Impression:
    return Impression(
        impression_id="i-1",
        user_id=7,
        item_id=11,
        author_id=13,
        domain="tab1",
        event_time_ms=1_700_000_000_000,
        sparse={"tag": [1, 2], "video_type": "NORMAL"},
        dense={"video_duration_s": 12.5},
    )


def test_encode_equals_asdict_and_is_compact():
    imp = impression()
    data = encode(imp)
    assert json.loads(data) == dataclasses.asdict(imp)
    assert b" " not in data
    assert imp.key() == b"7"


def test_round_trips():
    imp = impression()
    action = Action("i-1", 7, "like", 1_700_000_001_000)
    sample = LabelledSample("i-1", imp, {"click": 1, "like": 0}, JoinInfo(window_ms=60_000, actions_joined=1))
    assert impression_from_dict(json.loads(encode(imp))) == imp
    assert action_from_dict(json.loads(encode(action))) == action
    assert decode_sample(encode(sample)) == sample
    assert sample.key() == b"7"


@settings(max_examples=500)
@given(st.text(max_size=30))
def test_json_string_is_compact_json_of_a_string(text: str) -> None:
    assert json_string(text) == compact_json(text)
    assert json_string("0:i:sim7-12") == b'"0:i:sim7-12"'
