"""The pure event-time join: watermark of both inputs, windows, late/orphan actions, recovery."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from stream.config.pipeline import load_config
from stream.events.formats import Action, Impression, LabelledSample, encode
from stream.events.validation import InvalidEvent
from stream.joiner.clock_skew import ClockSkewPolicy
from stream.joiner.join_output import EmittedSample, JoinOutput
from stream.joiner.partition_joiner import PartitionJoiner
from stream.joiner.state import encode_record
from stream.simulator import EventSimulator

TASKS = ["click", "like"]
W, G = 1000, 100
T0 = 1_000_000


def imp(i: int, t: int, labels: dict[str, int] | None = None, user: int = 7) -> Impression:
    return Impression(f"i{i}", user, 1, 2, "tab1", t, {}, {}, labels)


def act(i: int, t: int, task: str = "click", user: int = 7) -> Action:
    return Action(f"i{i}", user, task, t)


class Feed:
    """Feeds a joiner with per-input offsets and keeps everything it produced."""

    def __init__(self, joiner: PartitionJoiner) -> None:
        self.joiner = joiner
        self.offsets = {"i": -1, "a": -1}
        self.samples: list[LabelledSample] = []
        self.emitted: list[EmittedSample] = []
        self.counts: dict[str, int] = {}

    def send(self, *events: Impression | Action) -> JoinOutput:
        for e in events:
            kind = "i" if isinstance(e, Impression) else "a"
            self.offsets[kind] += 1
            if kind == "i":
                self.joiner.on_impression(e, self.offsets[kind])
            else:
                self.joiner.on_action(e, self.offsets[kind])
        out = self.joiner.drain()
        self.samples += [e.sample for e in out.emitted]
        self.emitted += out.emitted
        for k, v in out.counts.items():
            self.counts[k] = self.counts.get(k, 0) + v
        return out


def new_feed() -> Feed:
    return Feed(PartitionJoiner(0, TASKS, W, G))


def test_sample_closes_when_both_inputs_pass_deadline() -> None:
    f = new_feed()
    f.send(imp(1, T0), act(1, T0 + 500, "like"))
    f.send(imp(2, T0 + W + G + 1))  # impressions are past the deadline, actions are not
    assert f.samples == []
    f.send(act(2, T0 + W + G + 1))
    assert [(s.sample_id, s.labels) for s in f.samples] == [("i1", {"click": 0, "like": 1})]
    assert f.samples[0].join.closed_at_watermark_ms == T0 + W + G
    assert f.samples[0].join.actions_joined == 1


def test_lagging_action_stream_holds_the_watermark_back() -> None:
    f = new_feed()
    f.send(imp(1, T0), act(9, T0))
    f.send(*[imp(i, T0 + i * 1000) for i in range(2, 10)])  # impressions run 8 s ahead
    assert f.samples == []
    f.send(act(1, T0 + W))  # at the window's edge: still inside
    f.send(act(9, T0 + 5 * W))
    assert [(s.sample_id, s.labels["click"]) for s in f.samples][0] == ("i1", 1)


def test_late_and_out_of_window_actions_are_dropped() -> None:
    f = new_feed()
    f.send(imp(1, T0), imp(2, T0 + 50), act(2, T0 + 50 + 1))
    f.send(act(2, T0 + 400, "like"))
    f.send(act(1, T0 + 400 - G - 1))  # more than grace behind its own stream: late
    f.send(act(2, T0 + 50 + W + 1, "like"))  # after the window of i2
    f.send(imp(3, T0 + 5000), act(3, T0 + 5000))
    labels = {s.sample_id: s.labels for s in f.samples}
    assert labels == {"i1": {"click": 0, "like": 0}, "i2": {"click": 1, "like": 1}}
    assert f.counts["late_actions"] == 1
    assert f.counts["out_of_window_actions"] == 1


def test_action_before_its_impression_waits_then_attaches_or_becomes_orphan() -> None:
    f = new_feed()
    f.send(act(1, T0 + 10), act(2, T0 + 20, "like"))
    f.send(imp(1, T0))  # i1 arrives after its action (actions stream ran ahead)
    f.send(imp(3, T0 + 20 + G + 1))  # impressions pass i2's action time + grace: orphan
    assert f.counts["orphan_actions"] == 1
    f.send(imp(4, T0 + 10 * W), act(4, T0 + 10 * W))
    assert {s.sample_id: s.labels["click"] for s in f.samples} == {"i1": 1, "i3": 0}


def test_action_after_emission_is_counted_late() -> None:
    f = new_feed()
    f.send(imp(1, T0), act(1, T0 + 1))
    f.send(imp(2, T0 + 3 * W), act(2, T0 + 3 * W))
    assert [s.sample_id for s in f.samples] == ["i1"]
    f.send(act(1, T0 + 3 * W, "like"))  # on time in its stream, but i1 is gone
    assert f.counts["late_actions"] == 1
    assert f.counts.get("orphan_actions", 0) == 0


def test_late_impression_is_emitted_at_once_without_observed_labels() -> None:
    f = new_feed()
    f.send(imp(1, T0 + 5000))
    f.send(imp(2, T0))  # 5 s behind its stream, grace is 100 ms
    assert [(s.sample_id, s.labels, s.join.source) for s in f.samples] == [("i2", {}, "late_impression")]


def test_prelabelled_impression_passes_straight_through() -> None:
    f = new_feed()
    f.send(imp(1, T0, labels={"click": 1}))
    assert [(s.sample_id, s.labels, s.join.source) for s in f.samples] == [("i1", {"click": 1}, "prelabelled")]
    assert f.joiner.pending_count == 0


def test_close_all_emits_every_pending_impression() -> None:
    f = new_feed()
    f.send(imp(1, T0), act(1, T0 + 5), imp(2, T0 + 10), act(7, T0 + 20))
    f.joiner.close_all()
    f.send()
    assert sorted(s.sample_id for s in f.samples) == ["i1", "i2"]
    assert f.counts["orphan_actions"] == 1
    assert f.joiner.pending_count == 0


def test_an_on_time_impression_after_an_idle_close_is_late_not_a_wrong_zero() -> None:
    """Issue 12 case 1: the idle close's watermark floor already closed its window; joining it
    emitted click = 0 at once, and its click was then counted late."""
    f = new_feed()
    f.send(imp(1, T0), act(1, T0 + 5))
    f.joiner.close_all()
    f.send(imp(2, T0 - 50), act(2, T0 - 40))  # on time for its stream (grace 100), window closed
    f.send(imp(3, T0 + 3), act(3, T0 + 20))  # its window ends before the floor too
    f.send(imp(4, T0 + 10), act(4, T0 + 30))  # a window ending after the floor joins normally
    f.send(imp(5, T0 + 9000), act(5, T0 + 9000))
    samples = {s.sample_id: (s.labels, s.join.source) for s in f.samples}
    assert samples == {
        "i1": ({"click": 1, "like": 0}, "join"),
        "i2": ({}, "late_impression"),
        "i3": ({}, "late_impression"),
        "i4": ({"click": 1, "like": 0}, "join"),
    }
    assert f.counts["late_impressions"] == 2 and f.counts["late_actions"] == 2


def test_an_impression_ahead_of_its_stream_joins_its_own_actions_without_moving_the_stream() -> None:
    skew = ClockSkewPolicy(step_ms=50, max_ahead_ms=60_000, jump_users=3, grace_ms=G)
    f = Feed(PartitionJoiner(0, TASKS, W, G, skew=skew))
    start = [imp(k, T0 + k, user=k) for k in (1, 2, 3)] + [act(k, T0 + 10 + k, user=k) for k in (1, 2, 3)]
    f.send(*start)  # three users set both stream times
    f.send(imp(4, T0 + 30_000, user=4), act(4, T0 + 30_010, user=4))  # a clock 30 s ahead
    f.send(imp(5, T0 + 40, user=5), act(5, T0 + 60, "like", user=5))  # still on time
    assert f.joiner.clock.impressions_time_ms == T0 + 40 and f.joiner.clock.actions_time_ms == T0 + 60
    later = [(imp(10 + k, T0 + 40 + 40 * k, user=k), act(10 + k, T0 + 40 + 40 * k, user=k)) for k in range(1, 40)]
    f.send(*[e for pair in later for e in pair])
    labels = {s.sample_id: s.labels for s in f.samples}
    assert labels["i1"] == {"click": 1, "like": 0} and labels["i5"] == {"click": 0, "like": 1}
    assert "i4" not in labels and f.joiner.pending["i4"].actions == (("click", T0 + 30_010),)
    assert f.counts["ahead_events"] == 2 and "late_impressions" not in f.counts


def test_votes_for_a_jump_survive_a_restore_and_then_move_the_stream_time() -> None:
    skew = ClockSkewPolicy(step_ms=50, max_ahead_ms=1_000, jump_users=3, grace_ms=G)
    first = PartitionJoiner(0, TASKS, W, G, skew=skew)
    for k in (1, 2, 3):
        first.on_impression(imp(k, T0 + k, user=k), k - 1)
    for k in (4, 5):  # traffic resumes 10 s later: too far ahead, dead-lettered
        with pytest.raises(InvalidEvent, match="ahead of the stream time of impressions partition 0"):
            first.on_impression(imp(k, T0 + 10_000 + k, user=k), k - 1)
    table = dict(first.drain().changes)
    restored = PartitionJoiner.restore(0, TASKS, W, G, table.items(), skew)
    assert restored.clock.impressions_votes == [[4, T0 + 10_004], [5, T0 + 10_005]]
    restored.on_impression(imp(6, T0 + 10_006, user=6), 5)  # the third user: the stream time jumps
    out = restored.drain()
    assert restored.clock.impressions_time_ms == T0 + 10_006 and list(restored.pending) == ["i1", "i2", "i3", "i6"]
    assert out.counts["stream_time_jumps"] == 1 and b"votes" not in dict(out.changes)["0:clock"]


def test_duplicate_events_below_the_applied_offset_are_skipped() -> None:
    j = PartitionJoiner(0, TASKS, W, G)
    j.on_impression(imp(1, T0), 0)
    j.on_action(act(1, T0 + 1), 0)
    j.on_action(act(1, T0 + 1), 0)  # redelivered after a crash
    assert j.drain().counts["replayed_skipped"] == 1
    assert j.pending["i1"].actions == (("click", T0 + 1),)


# -- determinism and recovery against the simulator's ground truth ---------------------------


@pytest.fixture(scope="module")
def simulated() -> tuple[list[Impression | Action], dict[str, LabelledSample], int]:
    config = load_config(environ={})
    simulator = EventSimulator(config.simulator, config.schema)
    n = 3000
    events = list(simulator.events(n))
    truth = {s.sample_id: s for s, _ in simulator.labelled_samples(n, config.joiner.window_ms)}
    return events, truth, config.joiner.window_ms


def _crash_run(simulated: Any, interleave_seed: int, seed: int) -> tuple[list[str], list[Any], random.Random]:
    """A crash test's tasks, its interleaving of the simulated events, and its random source."""
    events, truth, _ = simulated
    return list(next(iter(truth.values())).labels), _interleave(events, interleave_seed), random.Random(seed)


def _apply(joiner: PartitionJoiner, batch: list[Any], offsets: dict[str, int]) -> None:
    """Apply a batch of events, each at the next offset of its input (``offsets`` moves on)."""
    for e in batch:
        kind = "i" if isinstance(e, Impression) else "a"
        offsets[kind] += 1
        (joiner.on_impression if kind == "i" else joiner.on_action)(e, offsets[kind])


def _write(table: dict[str, Any], writes: list[tuple[str, Any]]) -> dict[str, Any]:
    """Apply changelog writes to a table of live records (None deletes); returns the table."""
    for key, record in writes:
        table.pop(key, None) if record is None else table.__setitem__(key, record)
    return table


def _resume(restored: PartitionJoiner, offsets: dict[str, int], events: list[Any]) -> list[LabelledSample]:
    """The samples a restored joiner emits re-reading ``events`` after ``offsets``, then closing all."""
    feed = Feed(restored)
    feed.offsets = offsets
    for e in events:
        feed.send(e)
    restored.close_all()
    feed.send()
    return feed.samples


def _interleave(events: list[Any], seed: int) -> list[Any]:
    """Same order within each input, random interleaving of the two (like two consumers)."""
    rng = random.Random(seed)
    imps = [e for e in events if isinstance(e, Impression)]
    acts = [e for e in events if isinstance(e, Action)]
    out, i, a = [], 0, 0
    while i < len(imps) or a < len(acts):
        take_imp = a >= len(acts) or (i < len(imps) and rng.random() < 0.5 + 0.4 * ((seed % 3) - 1))
        if take_imp:
            out.append(imps[i])
            i += 1
        else:
            out.append(acts[a])
            a += 1
    return out


# The default clock-skew guard: normal traffic never trips it, so the rules above are unchanged.
SKEW = load_config(environ={}).joiner.skew_policy()


def _run(events: list[Any], window_ms: int, tasks: list[str]) -> dict[str, LabelledSample]:
    f = Feed(PartitionJoiner(0, tasks, window_ms, 30_000, skew=SKEW))
    for e in events:
        f.send(e)
    f.joiner.close_all()
    f.send()
    assert len(f.samples) == len({s.sample_id for s in f.samples})
    return {s.sample_id: s for s in f.samples}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_any_interleaving_of_the_inputs_gives_the_ground_truth(simulated: Any, seed: int) -> None:
    events, truth, window_ms = simulated
    tasks = list(next(iter(truth.values())).labels)
    samples = _run(_interleave(events, seed), window_ms, tasks)
    assert samples.keys() == truth.keys()
    assert {k: s.labels for k, s in samples.items()} == {k: s.labels for k, s in truth.items()}


def test_crash_at_any_point_restores_to_identical_samples(simulated: Any) -> None:
    """Persist a prefix of the changelog writes, restart from older offsets: same samples."""
    _, truth, window_ms = simulated
    tasks, order, rng = _crash_run(simulated, interleave_seed=5, seed=11)
    for _ in range(6):
        crash_at = rng.randrange(len(order) // 4, 3 * len(order) // 4)
        table: dict[str, Any] = {}
        log: list[tuple[str, Any]] = []  # changelog in write order
        emitted: dict[str, LabelledSample] = {}
        joiner = PartitionJoiner(0, tasks, window_ms, 30_000, skew=SKEW)
        offsets = {"i": -1, "a": -1}
        boundaries: list[tuple[int, dict[str, int], int]] = [(0, dict(offsets), 0)]  # (event, offsets, log)
        position = 0
        while position < crash_at:  # batches of events, like the agent's take_events
            batch = order[position : min(crash_at, position + rng.randint(1, 60))]
            _apply(joiner, batch, offsets)
            position += len(batch)
            out = joiner.drain()
            log += out.changes
            for s in out.emitted:
                emitted[s.sample.sample_id] = s.sample
                if s.state_key is not None and rng.random() < 0.7:  # some deliveries confirmed
                    log.append((s.state_key, None))
            boundaries.append((position, dict(offsets), len(log)))
        # Offsets are committed after the producer is flushed: the committed position lags behind
        # the processed one, and every write made before it is durable; a later tail may be lost.
        resume, offsets, durable = boundaries[rng.randrange(0, len(boundaries) - 1)]
        _write(table, log[: rng.randrange(durable, len(log) + 1)])
        restored = PartitionJoiner.restore(0, tasks, window_ms, 30_000, table.items(), SKEW)
        for s in _resume(restored, offsets, order[resume:]):
            if s.sample_id in emitted:
                assert emitted[s.sample_id].labels == s.labels  # a duplicate is identical
            emitted[s.sample_id] = s
        assert emitted.keys() == truth.keys()
        assert {k: s.labels for k, s in emitted.items()} == {k: s.labels for k, s in truth.items()}


def test_crash_at_any_point_with_state_written_at_commits_loses_no_sample(simulated: Any) -> None:
    """The kafka engine's order (``state_after_acks``): samples produced after every batch; at each
    commit, every sample emitted so far acknowledged, then the state changes written, then the
    offsets committed. A crash keeps the state of a committed position plus any prefix of the
    writes after it, and only the samples that some durable write proves acknowledged (others
    maybe): re-reading from the committed offsets gives every impression, duplicates identical."""
    _, truth, window_ms = simulated
    tasks, order, rng = _crash_run(simulated, interleave_seed=7, seed=13)
    for _ in range(8):
        crash_at = rng.randrange(len(order) // 4, 3 * len(order) // 4)
        log: list[tuple[str, Any]] = []  # changelog in write order
        emitted: list[LabelledSample] = []  # every sample produced, in order
        joiner = PartitionJoiner(0, tasks, window_ms, 30_000, skew=SKEW, state_after_acks=True)
        offsets = {"i": -1, "a": -1}
        # (next event, committed offsets, log length when the commit began and ended, samples acked)
        commits: list[tuple[int, dict[str, int], int, int, int]] = [(0, dict(offsets), 0, 0, 0)]
        position = 0
        while position < crash_at:
            batch = order[position : min(crash_at, position + rng.randint(1, 60))]
            _apply(joiner, batch, offsets)
            position += len(batch)
            out = joiner.drain_samples()
            assert out.changes == [] and all(s.state_key is None for s in out.emitted)
            emitted += [s.sample for s in out.emitted]
            if rng.random() < 0.3:  # a commit: flush (all acked), state, flush, offsets
                begin = len(log)
                log += joiner.take_changes()
                commits.append((position, dict(offsets), begin, len(log), len(emitted)))
        resume, offsets, _, committed_log, _ = commits[rng.randrange(len(commits))]
        durable = rng.randrange(committed_log, len(log) + 1)
        # A durable write of a commit proves every sample before that commit acknowledged.
        acked = max(n for _, _, begin, end, n in commits if begin < durable or end <= durable)
        delivered = emitted[:acked] + [s for s in emitted[acked:] if rng.random() < 0.5]
        table = _write({}, log[:durable])
        restored = PartitionJoiner.restore(0, tasks, window_ms, 30_000, table.items(), SKEW, state_after_acks=True)
        seen: dict[str, LabelledSample] = {}
        for s in delivered + _resume(restored, offsets, order[resume:]):
            assert seen.setdefault(s.sample_id, s).labels == s.labels  # a duplicate is identical
        assert seen.keys() == truth.keys()
        assert {k: s.labels for k, s in seen.items()} == {k: s.labels for k, s in truth.items()}


def test_with_state_written_after_acks_an_impression_opened_and_closed_between_two_writes_costs_nothing() -> None:
    joiner = PartitionJoiner(0, TASKS, W, G, state_after_acks=True)
    joiner.on_impression(imp(1, T0), 0)
    assert [k for k, _ in joiner.take_changes()] == ["0:i:i1", "0:clock"]  # written: i1 is persisted
    joiner.on_impression(imp(2, T0 + 10), 1)
    joiner.on_action(act(3, T0 + 20), 0)  # an early action, its impression never comes
    joiner.on_impression(imp(4, T0 + W + G + 50), 2)
    joiner.on_action(act(4, T0 + W + G + 60), 1)  # both streams past the deadlines of i1 and i2
    samples = joiner.drain_samples().emitted
    assert [s.sample_id for s in samples] == ["i1", "i2"] and all(s.state_key is None for s in samples)
    clock = encode_record(joiner.clock.to_record())
    # i1's record is deleted with this write; i2 and the early action of i3 were never written.
    writes = list(joiner.take_changes())
    assert writes == [("0:i:i4", joiner.pending["i4"].to_record()), ("0:i:i1", None), ("0:clock", clock)]


def test_an_early_action_deletion_never_overtakes_the_impression_that_absorbed_it() -> None:
    """A crash inside a drain keeps the actions: the changes are a log in write order."""
    first = PartitionJoiner(0, TASKS, W, G)
    first.on_action(act(1, T0 + 10), 0)  # before its impression: held early
    durable = dict(first.drain().changes)  # written and acknowledged, clock included
    batch = [(act(1, T0 + 20, "like"), 1), (imp(1, T0), 0)]
    for e, offset in batch:
        (first.on_action if isinstance(e, Action) else first.on_impression)(e, offset)
    changes = first.drain().changes
    for cut in range(len(changes) + 1):  # the crash lands after `cut` writes of the second drain
        table = _write(dict(durable), changes[:cut])
        restored = Feed(PartitionJoiner.restore(0, TASKS, W, G, table.items()))
        restored.offsets = {"i": -1, "a": 0}  # the consumer resumes after the committed action
        restored.send(*(e for e, _ in batch))
        restored.joiner.close_all()
        restored.send()
        assert [s.labels for s in restored.samples] == [{"click": 1, "like": 1}], f"crash after {cut} writes"


def test_emitted_samples_are_the_bytes_of_the_encoded_sample() -> None:
    """Joined, late and pre-labelled samples: the impression spliced in as read gives exactly
    ``formats.encode(sample)`` when the impression was written by ``formats.encode``."""
    f = new_feed()
    f.send(imp(1, T0), act(1, T0 + 5, "like"), imp(2, T0 + 5000), act(2, T0 + 5000))
    f.send(imp(3, T0), imp(4, T0 + 1, labels={"click": 1}))  # late, pre-labelled
    out = {e.sample_id: e for e in f.emitted}
    assert {k: e.source for k, e in out.items()} == {"i1": "join", "i3": "late_impression", "i4": "prelabelled"}
    for emitted in out.values():
        assert emitted.encode() == encode(emitted.sample)
        assert emitted.key() == b"7"
    assert out["i1"].sample.labels == {"click": 0, "like": 1}
    assert out["i1"].sample.impression == imp(1, T0)
    # Spelled the producer's way: spliced as read, the same sample once decoded.
    as_read = encode(imp(5, T0 + 6000)).replace(b",", b", ")
    j = PartitionJoiner(0, TASKS, W, G)
    j.on_impression(imp(5, T0 + 6000), 0, as_read)
    j.on_action(act(5, T0 + 9 * W), 0)
    j.close_all()
    (emitted,) = j.drain().emitted
    assert as_read in emitted.encode() and emitted.sample.impression == imp(5, T0 + 6000)


def test_restore_keeps_the_impression_bytes_as_written() -> None:
    as_read = encode(imp(1, T0)).replace(b":", b": ")
    first = PartitionJoiner(0, TASKS, W, G)
    first.on_impression(imp(1, T0), 0, as_read)
    first.on_action(act(1, T0 + 3, "like"), 0)
    records = dict(first.drain().changes)
    assert json.loads(records["0:i:i1"]) == {"impression": json.loads(as_read), "actions": [["like", T0 + 3]]}
    for stored in (records, {k: json.loads(v) for k, v in records.items()}):  # bytes, or decoded (faust)
        restored = PartitionJoiner.restore(0, TASKS, W, G, stored.items())
        assert restored.pending["i1"].actions == (("like", T0 + 3),)
        restored.close_all()
        (emitted,) = restored.drain().emitted
        assert emitted.sample.labels == {"click": 0, "like": 1}
        if stored is records:
            assert emitted.impression_json == as_read  # not re-encoded


def test_restore_from_a_log_that_holds_a_key_twice_closes_each_impression_once_in_deadline_order() -> None:
    """The changelog read in full (not compacted): the last record of a key wins, and the
    impressions close by (deadline, id) as before the restore."""
    first = PartitionJoiner(0, TASKS, W, G)
    for k, (i, t) in enumerate([(3, T0 + 1), (2, T0), (1, T0)]):  # i1 and i2 share a deadline
        first.on_impression(imp(i, t), k)
    log = list(first.drain().changes)
    first.on_action(act(1, T0 + 5), 0)
    log += first.drain().changes  # "0:i:i1" written again, with its action
    assert [key for key, _ in log].count("0:i:i1") == 2
    restored = PartitionJoiner.restore(0, TASKS, W, G, log)
    restored.close_all()
    emitted = restored.drain().emitted
    assert [(e.sample_id, e.sample.labels["click"]) for e in emitted] == [("i1", 1), ("i2", 0), ("i3", 0)]
