"""Run log: PassRecord JSON round trip, append durability, tolerant and strict reading."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from monitoring.run_log import PassRecord, append_pass_record, passes_path, read_pass_records


def make_record(pass_index: int, loss: float = 0.5) -> PassRecord:
    return PassRecord(
        pass_index=pass_index,
        samples=1000 + pass_index,
        duration_s=2.0,
        samples_per_s=500.0,
        loss={"click": loss, "like": 0.1},
        auc={"click": 0.7, "like": math.nan},
        auc_by_domain={"click": {"tab0": 0.71, "tab1": 0.69}},
        logloss={"click": 0.45, "like": 0.09},
        table_bytes=1 << 20,
        budget_bytes=1 << 21,
        table_rows=1234,
        evictions={"ttl": 3, "budget": pass_index},
        consumer_lag=42,
        event_time_min_ms=1_700_000_000_000,
        event_time_max_ms=1_700_000_060_000,
        observed={"click": 1000, "like": 1000},
        positives={"click": 100, "like": 0},
        positives_by_domain={"click": {"tab0": 60, "tab1": 40}},
        logloss_stderr={"click": 0.01, "like": 0.005},
    )


def test_round_trip_keeps_values_and_turns_nan_into_null() -> None:
    record = make_record(3)
    line = record.to_json()
    assert json.loads(line)["auc"]["like"] is None
    back = PassRecord.from_json(line)
    assert math.isnan(back.auc["like"])
    back.auc["like"] = record.auc["like"] = 0.0
    assert back == record


def test_numpy_scalars_are_written_as_plain_numbers() -> None:
    record = make_record(1)
    record.samples = np.int64(77)
    record.loss = {"click": np.float32(0.25)}
    assert PassRecord.from_json(record.to_json()).samples == 77
    assert PassRecord.from_json(record.to_json()).loss == {"click": 0.25}


def test_append_then_read_returns_records_sorted_and_deduplicated(tmp_path) -> None:
    for index, loss in [(0, 0.6), (1, 0.5), (1, 0.4), (2, 0.3)]:
        append_pass_record(tmp_path, make_record(index, loss))
    records = read_pass_records(tmp_path)
    assert [r.pass_index for r in records] == [0, 1, 2]
    assert records[1].loss["click"] == 0.4  # a re-run pass keeps its last record
    assert passes_path(tmp_path).read_text().count("\n") == 4


def test_truncated_last_line_is_skipped_with_a_warning(tmp_path) -> None:
    append_pass_record(tmp_path, make_record(0))
    with open(passes_path(tmp_path), "a") as handle:
        handle.write(make_record(1).to_json()[:40])
    with pytest.warns(UserWarning, match="truncated"):
        records = read_pass_records(tmp_path)
    assert [r.pass_index for r in records] == [0]


def test_bad_line_in_the_middle_names_file_line_and_field(tmp_path) -> None:
    append_pass_record(tmp_path, make_record(0))
    bad = json.loads(make_record(1).to_json())
    del bad["loss"]
    with open(passes_path(tmp_path), "a") as handle:
        handle.write(json.dumps(bad) + "\n")
    append_pass_record(tmp_path, make_record(2))
    with pytest.raises(ValueError, match=r"passes.jsonl:2: loss: missing field"):
        read_pass_records(tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("samples", "many", "samples: expected int"),
        ("loss", [1], "loss: expected an object"),
        ("auc_by_domain", {"click": {"tab0": "high"}}, "auc_by_domain.click.tab0: expected float"),
        ("table_rows", True, "table_rows: expected int"),
        ("extra", 1, "extra: unknown field"),
        ("samples", -1, "samples must be >= 0"),
    ],
)
def test_from_json_rejects_wrong_types_naming_the_field(field: str, value: object, message: str) -> None:
    data = json.loads(make_record(0).to_json())
    data[field] = value
    with pytest.raises(ValueError, match=message):
        PassRecord.from_json(json.dumps(data))


def test_event_time_range_must_be_ordered() -> None:
    record = make_record(0)
    with pytest.raises(ValueError, match="event_time_max_ms must be >= event_time_min_ms"):
        PassRecord(**{**record.__dict__, "event_time_max_ms": record.event_time_min_ms - 1})


def test_missing_run_log_is_a_clear_error(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="no run log"):
        read_pass_records(tmp_path)
