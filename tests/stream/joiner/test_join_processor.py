"""The engine-neutral joiner core: dispatch by topic, dead letters, metrics, restore, idle close."""

from __future__ import annotations

import time
from collections import Counter

import pytest
from prometheus_client import CollectorRegistry

from monitoring.joiner_metrics import JoinerMetrics
from stream.config.pipeline import load_config
from stream.events.formats import Action, Impression, encode
from stream.events.validation import REASONS
from stream.joiner.join_processor import JoinProcessor
from stream.joiner.state import decode_state_record, encode_state_key
from stream.simulator import EventSimulator
from tests.stream.joiner.wrong_clocks import assert_wrong_clock_samples, with_wrong_clocks, wrong_clock_users

T0 = 1_700_000_000_000
IMPRESSIONS, ACTIONS = "t.impressions", "t.actions"


def make_processor(records: dict[int, list] | None = None, idle_close_ms: int = 50, **joiner: int) -> JoinProcessor:
    """A processor of a 1 s window and 100 ms grace; events jump seconds ahead here, so the clock
    skew guard is off unless ``clock_step_ms`` is given."""
    topics = {"impressions": {"name": IMPRESSIONS}, "actions": {"name": ACTIONS}}
    joiner = {"window_ms": 1000, "grace_ms": 100, "idle_close_ms": idle_close_ms, "clock_step_ms": 0, **joiner}
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


def test_a_message_without_a_key_is_a_missing_key_dead_letter() -> None:
    p = make_processor()
    letter = p.apply(IMPRESSIONS, 0, 0, None, encode(impression(1, T0)), -1)
    assert letter is not None and letter.reason == "missing_key" and letter.detail.startswith("key:")
    letter = p.apply(ACTIONS, 0, 0, None, encode(Action("imp-1", 7, "click", T0 + 10)), -1)
    assert letter is not None and letter.reason == "missing_key"
    assert metric(p, "pepnet_dead_letters_total", reason="missing_key") == 2
    assert p.joiners[0].pending_count == 0


def test_an_event_too_far_ahead_of_its_stream_is_a_counted_future_event_time_dead_letter() -> None:
    p = make_processor(clock_step_ms=50, max_ahead_ms=10_000)

    def send(topic: str, offset: int, event: Impression | Action, timestamp_ms: int = -1):
        return p.apply(topic, 0, offset, event.key(), encode(event), timestamp_ms)

    for user in (1, 2, 3):  # three users set the stream times
        assert send(IMPRESSIONS, user - 1, Impression(f"imp-{user}", user, 11, 12, "tab1", T0 + user, {}, {})) is None
        assert send(ACTIONS, user - 1, Action(f"imp-{user}", user, "click", T0 + 10 + user)) is None
    twelve_hours = 12 * 3_600_000
    letter = send(IMPRESSIONS, 3, Impression("imp-4", 4, 11, 12, "tab1", T0 + twelve_hours, {}, {}), 5)
    assert letter is not None and letter.reason == "future_event_time"
    assert letter.detail.startswith("event_time_ms:") and "ahead of the stream time" in letter.detail
    assert (letter.source_offset, letter.source_timestamp_ms, letter.key) == (3, 5, b"4")
    letter = send(ACTIONS, 3, Action("imp-4", 4, "click", T0 + twelve_hours))
    assert letter is not None and letter.reason == "future_event_time"
    assert send(IMPRESSIONS, 4, Impression("imp-5", 5, 11, 12, "tab1", T0 + 20, {}, {})) is None  # on time
    p.drain(0)
    assert metric(p, "pepnet_dead_letters_total", reason="future_event_time") == 2
    assert metric(p, "pepnet_joiner_impressions_consumed_total") == 4  # dead letters are not consumed
    clock = p.joiners[0].clock
    assert clock.impressions_time_ms == T0 + 20 and sorted(p.joiners[0].pending) == [f"imp-{k}" for k in (1, 2, 3, 5)]


def test_wrong_device_clocks_leave_every_other_impression_with_its_ground_truth_labels() -> None:
    """Issue 12 case 2: one device stamped hours ahead moved its partition's stream time, and every
    later event of that partition became late (impressions unlabelled, actions dropped)."""
    topics = {"impressions": {"name": IMPRESSIONS}, "actions": {"name": ACTIONS}}
    config = load_config(overrides={"kafka": {"topics": topics}}, environ={})  # default window and grace
    simulator = EventSimulator(config.simulator, config.schema)
    n = 4000
    events = list(simulator.events(n))
    truth = {s.sample_id: s.labels for s, _ in simulator.labelled_samples(n, config.joiner.window_ms)}
    offsets = wrong_clock_users(events)
    processor = JoinProcessor(config.kafka.topics, config.schema, config.joiner, JoinerMetrics(CollectorRegistry()),
                              lambda p: [], lambda: T0)  # fmt: skip
    read = Counter()
    letters, samples = [], []
    for event in with_wrong_clocks(events, offsets):
        topic = IMPRESSIONS if isinstance(event, Impression) else ACTIONS
        partition = event.user_id % 4
        letter = processor.apply(topic, partition, read[topic, partition], event.key(), encode(event), -1)
        read[topic, partition] += 1
        letters += [letter] if letter is not None else []
    for partition, joiner in processor.joiners.items():
        joiner.close_all()  # the end of the stream (idle close)
        samples += [e.sample for e in processor.drain(partition).emitted]
    assert len({p for p in processor.joiners if any(u % 4 == p for u in offsets)}) == 4

    owner = {e.impression_id: e.user_id for e in events if isinstance(e, Impression)}
    good = [s for s in samples if s.impression.user_id not in offsets]
    assert len(good) == len({s.sample_id for s in good}) == sum(1 for k in truth if owner[k] not in offsets)
    assert all(s.labels == truth[s.sample_id] and s.join.source == "join" for s in good)
    behind = [k for k in truth if offsets.get(owner[k], 0) < 0]
    assert_wrong_clock_samples([s for s in samples if s.impression.user_id in offsets], truth, behind)
    assert {letter.reason for letter in letters} <= {"future_event_time", "future_timestamp"}
    assert {int(letter.key) for letter in letters} == {u for u, o in offsets.items() if o > config.joiner.max_ahead_ms}
