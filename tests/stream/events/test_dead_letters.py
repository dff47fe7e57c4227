"""Dead-letter records keep the original bytes and say where they came from and why."""

from __future__ import annotations

import pytest

from stream.events.dead_letters import HEADER_REASON, DeadLetter


def test_headers_round_trip_with_non_utf8_value() -> None:
    letter = DeadLetter(
        b"\xff\x00raw", b"42", "bad_json", "value: not valid UTF-8 JSON", "pepnet.impressions", 3, 1234, 99
    )
    back = DeadLetter.from_message(letter.key, letter.value, letter.headers())
    assert back == letter
    assert dict(letter.headers())[HEADER_REASON] == b"bad_json"


def test_long_detail_is_cut_and_missing_header_is_named() -> None:
    letter = DeadLetter(b"x", None, "oversized", "d" * 10_000, "t", 0, 0)
    assert len(dict(letter.headers())["pepnet.detail"]) == 500
    with pytest.raises(ValueError, match="pepnet.reason"):
        DeadLetter.from_message(None, b"x", [h for h in letter.headers() if h[0] != HEADER_REASON])
