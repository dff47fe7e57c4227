"""What `pepnet score --input` reads: impressions or labelled samples, each line validated by the
joiner's rules; a bad line is one error naming the file, the line and the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stream.config.errors import UserError
from stream.config.pipeline import load_config
from stream.events.formats import LabelledSample
from stream.scoring.inputs import read_jsonl

SCHEMA = load_config(environ={}).schema
IMPRESSION = {"impression_id": "i1", "user_id": 7, "item_id": 70, "author_id": 700, "domain": "tab0",
              "event_time_ms": 1_700_000_000_000}  # fmt: skip


def write_lines(tmp_path: Path, *lines: object) -> Path:
    path = tmp_path / "input.jsonl"
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def test_impressions_and_labelled_samples_are_read(tmp_path: Path) -> None:
    sample = {"sample_id": "s1", "impression": IMPRESSION, "labels": {"click": 1, "like": 0},
              "join": {"window_ms": 300000}}  # fmt: skip
    events = list(read_jsonl(write_lines(tmp_path, IMPRESSION, "", sample), SCHEMA))
    assert events[0].impression_id == "i1" and events[0].domain == "tab0"
    assert isinstance(events[1], LabelledSample)
    assert (events[1].sample_id, events[1].labels, events[1].impression.user_id) == ("s1", {"click": 1, "like": 0}, 7)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ({**IMPRESSION, "domain": "tab9"}, "input.jsonl:2: domain: unknown domain 'tab9'; each line must be"),
        ({"impression_id": "i2", "domain": "tab0"}, "input.jsonl:2: user_id: required field is missing;"),
        ("{not json", "input.jsonl:2: line: not valid UTF-8 JSON"),
        ({"sample_id": "s", "impression": {**IMPRESSION, "domain": "tab9"}, "labels": {}},
         "input.jsonl:2: impression.domain: unknown domain 'tab9'"),
        ({"sample_id": "s", "impression": IMPRESSION, "labels": {"click": 3}},
         "input.jsonl:2: labels.click: must be 0 or 1, got 3"),
        ({"sample_id": "s", "impression": [1]}, "input.jsonl:2: impression: expected an object"),
    ],
)  # fmt: skip
def test_a_bad_line_is_one_line_naming_the_field(tmp_path: Path, line: object, message: str) -> None:
    with pytest.raises(UserError) as raised:
        list(read_jsonl(write_lines(tmp_path, IMPRESSION, line), SCHEMA))
    assert str(raised.value).startswith(str(tmp_path / message)), str(raised.value)
    assert "\n" not in str(raised.value)


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="^input file .*nothing.jsonl not found$"):
        list(read_jsonl(tmp_path / "nothing.jsonl", SCHEMA))
