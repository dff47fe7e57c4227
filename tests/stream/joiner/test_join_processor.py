"""The engine-neutral joiner core: dispatch by topic, dead letters, metrics, restore, idle close."""

from __future__ import annotations

import time

import pytest
from prometheus_client import CollectorRegistry

from monitoring.joiner_metrics import JoinerMetrics
from stream.config.pipeline import load_config
from stream.events.formats import Action, Impression, encode
from stream.events.validation import REASONS
from stream.joiner.join_processor import JoinProcessor
from stream.joiner.state import decode_state_record, encode_state_key

T0 = 1_700_000_000_000
IMPRESSIONS, ACTIONS = "t.impressions", "t.actions"


def make_processor(records: dict[int, list] | None = None, idle_close_ms: int = 50) -> JoinProcessor:
    topics = {"impressions": {"name": IMPRESSIONS}, "actions": {"name": ACTIONS}}
    joiner = {"window_ms": 1000, "grace_ms": 100, "idle_close_ms": idle_close_ms}
    config = load_config(overrides={"kafka": {"topics": topics}, "joiner": joiner}, environ={})
    registry = CollectorRegistry()
    metrics = JoinerMetrics(registry, REASONS)
    processor = JoinProcessor(
        config.kafka.topics, config.schema, config.joiner, metrics, lambda p: (records or {}).get(p, []), lambda: T0
    )
    processor.registry = registry  # type: ignore[attr-defined]  # read back in the tests
    return processor


def metric(processor: JoinProcessor, name: str, **labels: str) -> float:
    return processor.registry.get_sample_value(name, labels) or 0.0  # type: ignore[attr-defined]


def impression(i: int, t: int) -> Impression:
    return Impression(f"imp-{i}", 7, 11, 12, "tab1", t, {}, {}, None)


def test_impression_and_action_join_into_one_sample_after_the_watermark() -> None:
    p = make_processor()
    assert p.apply(IMPRESSIONS, 2, 0, b"7", encode(impression(1, T0)), -1) is None
    assert p.apply(ACTIONS, 2, 0, b"7", encode(Action("imp-1", 7, "click", T0 + 10)), -1) is None
    p.apply(IMPRESSIONS, 2, 1, b"7", encode(impression(2, T0 + 5000)), -1)
    p.apply(ACTIONS, 2, 1, b"7", encode(Action("imp-2", 7, "like", T0 + 5001)), -1)
    out = p.drain(2)
    assert [e.sample.sample_id for e in out.emitted] == ["imp-1"]
    assert out.emitted[0].sample.labels["click"] == 1 and out.emitted[0].state_key == "2:i:imp-1"
    assert out.changes[-1][0] == "2:clock"  # the clock record is written last
    assert metric(p, "pepnet_joiner_impressions_consumed_total") == 2
    assert metric(p, "pepnet_joiner_samples_emitted_total") == 1
    assert metric(p, "pepnet_joiner_pending_impressions") == 1
    assert metric(p, "pepnet_joiner_assigned_partitions") == 1
    assert p.drain(3) is None  # a partition never seen has no joiner


@pytest.mark.parametrize(
    ("topic", "value", "reason"),
    [
        (IMPRESSIONS, b"{not json", "bad_json"),
        (ACTIONS, b'{"impression_id": "x"}', "missing_field"),
        ("t.other", b"{}", "unknown_topic"),
    ],
)
def test_invalid_messages_become_counted_dead_letters_with_their_origin(topic: str, value: bytes, reason: str) -> None:
    p = make_processor()
    letter = p.apply(topic, 1, 42, b"7", value, 1234)
    assert letter is not None and letter.reason == reason
    assert (letter.value, letter.key, letter.source_topic, letter.source_partition, letter.source_offset) == (
        value, b"7", topic, 1, 42,
    )  # fmt: skip
    assert letter.source_timestamp_ms == 1234 and letter.detail
    assert metric(p, "pepnet_dead_letters_total", reason=reason) == 1


def test_a_bug_in_the_join_is_a_processing_error_dead_letter_not_a_crash(monkeypatch: pytest.MonkeyPatch) -> None:
    p = make_processor()
    joiner = p.joiner(0)
    monkeypatch.setattr(joiner, "on_impression", lambda *_: 1 / 0)
    letter = p.apply(IMPRESSIONS, 0, 0, b"7", encode(impression(1, T0)), -1)
    assert letter is not None and letter.reason == "processing_error" and "ZeroDivisionError" in letter.detail


def test_restore_reads_the_partition_records_and_rebuild_bumps_the_generation() -> None:
    source = make_processor()
    source.apply(IMPRESSIONS, 3, 0, b"7", encode(impression(1, T0)), -1)
    # What an engine writes to the changelog, read back through the wire encoding.
    records = [decode_state_record(encode_state_key(k), r) for k, r in source.drain(3).changes]
    p = make_processor({3: records})
    generation = p.generation
    p.rebuild([3])
    assert p.generation == generation + 1
    assert list(p.joiners[3].pending) == ["imp-1"] and p.joiners[3].clock.impressions_offset == 0
    # The same message again (a re-read after a crash) is skipped: the state holds it already.
    p.apply(IMPRESSIONS, 3, 0, b"7", encode(impression(1, T0)), -1)
    assert p.drain(3).counts["replayed_skipped"] == 1
    p.drop([3])
    assert p.joiners == {} and metric(p, "pepnet_joiner_assigned_partitions") == 0


def test_idle_close_needs_silence_and_both_inputs_applied_to_their_end() -> None:
    p = make_processor(idle_close_ms=50)
    p.apply(IMPRESSIONS, 0, 0, b"7", encode(impression(1, T0)), -1)
    assert p.idle_partitions() == []  # not silent long enough
    time.sleep(0.06)
    assert p.idle_partitions() == [0]
    ends = {IMPRESSIONS: 1, ACTIONS: 0}
    asked: dict[str, int] = {}

    def end_offset(topic: str, applied: int) -> int | None:
        asked[topic] = applied
        return ends[topic]

    assert p.caught_up(0, end_offset)
    assert asked == {IMPRESSIONS: 0, ACTIONS: -1}  # the applied offsets the engine may compare with
    ends[ACTIONS] = 5  # actions not read yet: closing now could miss them
    assert not p.caught_up(0, end_offset)
    assert not p.caught_up(0, lambda topic, applied: None)  # end unknown
    p.joiners[0].close_all()
    assert [e.sample.sample_id for e in p.drain(0).emitted] == ["imp-1"]
    assert p.idle_partitions() == []  # nothing pending any more


def test_idle_close_off() -> None:
    p = make_processor(idle_close_ms=0)
    p.apply(IMPRESSIONS, 0, 0, b"7", encode(impression(1, T0)), -1)
    assert p.idle_partitions() == []


def test_an_acknowledged_sample_s_record_is_deleted_only_by_the_joiner_generation_that_emitted_it() -> None:
    p = make_processor()
    p.rebuild([0, 1])
    p.sample_acknowledged(0, "0:i:a", p.generation)
    p.sample_acknowledged(1, "1:i:b", p.generation)
    p.sample_acknowledged(0, "0:i:old", p.generation - 1)  # emitted before a rebalance: kept
    p.drop([1])  # revoked since: its new owner decides
    assert p.take_deletions() == [(0, "0:i:a")]
    assert p.take_deletions() == []
