import numpy as np
import pytest

from stream.trainer.dedup import DedupWindow
from stream.trainer.pass_assembler import PassAssembler

from .sample_chunks import DOMAINS, TASKS, chunks_of, partition_log


def assembler(next_offsets, pass_samples, span=0, end_offsets=None, dedup_passes=2, first=0, history=None):
    return PassAssembler(
        "samples", next_offsets, pass_samples, span, DedupWindow(dedup_passes, history), TASKS, DOMAINS,
        first_pass_index=first, end_offsets=end_offsets,
    )  # fmt: skip


def run(asm, logs, rng=None, chunk=7):
    """Offer every partition's chunks (interleaved randomly when rng is given); collect passes."""
    queues = {p: chunks_of(p, ids, times, [chunk] * 1000) for p, (ids, times) in logs.items()}
    if rng is not None:
        queues = {p: chunks_of(p, ids, times, list(rng.integers(1, 20, size=1000))) for p, (ids, times) in logs.items()}
    passes = []
    while any(queues.values()):
        live = [p for p in queues if queues[p]]
        p = live[int(rng.integers(len(live)))] if rng is not None else live[0]
        asm.offer(queues[p].pop(0))
        while (closed := asm.close_pass()) is not None:
            passes.append(closed)
    return passes


def contents(passes):
    return [p.manifest.content() for p in passes]


def test_quota_splits_pass_samples_over_partitions():
    logs = {p: partition_log(p, 50) for p in range(3)}
    passes = run(assembler({0: 0, 1: 0, 2: 0}, 20), logs)
    first = passes[0].manifest
    assert [r.messages for r in first.ranges] == [7, 7, 6]
    assert first.samples == 20 and len(passes[0].batch) == 20
    assert [(r.start_offset, r.end_offset) for r in passes[1].manifest.ranges] == [(7, 14), (7, 14), (6, 12)]
    assert [p.manifest.pass_index for p in passes] == list(range(len(passes)))
    # Rows are in event-time order.
    assert np.all(np.diff(passes[0].batch.event_time_ms) >= 0)


def test_passes_do_not_depend_on_chunking_or_arrival_order():
    logs = {p: partition_log(p, 120, step_ms=3 + p) for p in range(4)}
    reference = contents(run(assembler({p: 0 for p in logs}, 40, span=100), logs))
    for seed in range(5):
        got = contents(run(assembler({p: 0 for p in logs}, 40, span=100), logs, np.random.default_rng(seed)))
        assert got == reference


def test_time_window_closes_pass_before_quota():
    logs = {0: partition_log(0, 30, step_ms=10), 1: partition_log(1, 30, step_ms=10)}
    passes = run(assembler({0: 0, 1: 0}, 1000, span=100), logs)
    first = passes[0].manifest
    assert first.window_start_ms == 0
    assert first.event_time_max_ms < 100 and first.samples == 20
    assert passes[1].manifest.window_start_ms == 100


def test_late_message_joins_the_current_pass():
    ids = ["a", "b", "late", "c"]
    times = [10, 150, 50, 160]  # "late" belongs to window 0 but arrives after window 1 started
    passes = run(assembler({0: 0}, 100, span=100, end_offsets={0: 4}), {0: (ids, times)}, chunk=1)
    assert [p.batch.sample_id for p in passes] == [["a"], ["late", "b", "c"]]


def test_restart_from_next_offsets_reproduces_later_passes():
    logs = {p: partition_log(p, 90) for p in range(3)}
    full = run(assembler({p: 0 for p in logs}, 30, dedup_passes=0), logs)
    cut = full[1].manifest
    resumed_asm = assembler(cut.next_offsets(), 30, dedup_passes=0, first=2)
    # Offer everything again from offset 0: rows before the resume offsets are ignored.
    resumed = run(resumed_asm, logs)
    assert [p.manifest.to_dict() for p in resumed] == [p.manifest.to_dict() for p in full[2:]]


def test_duplicates_dropped_within_and_across_passes():
    ids = ["a", "b", "a", "c", "d", "b", "e", "f"]
    times = list(range(0, 80, 10))
    passes = run(assembler({0: 0}, 4, dedup_passes=1), {0: (ids, times)}, chunk=3)
    assert passes[0].batch.sample_id == ["a", "b", "c"]
    assert passes[0].manifest.duplicates == 1 and passes[0].manifest.messages == 4
    assert passes[1].batch.sample_id == ["d", "e", "f"]
    assert passes[1].manifest.duplicates == 1


def test_dedup_history_survives_a_restart():
    window = DedupWindow(2)
    window.close_pass(["x", "y"])
    restored = DedupWindow(2, window.history())
    assert restored.keep_mask(["y", "z", "z"]).tolist() == [False, True, False]


def test_end_offsets_close_a_final_partial_pass_and_finish():
    logs = {0: partition_log(0, 25), 1: partition_log(1, 5)}
    asm = assembler({0: 0, 1: 0}, 20, end_offsets={0: 25, 1: 5})
    passes = run(asm, logs)
    assert sum(p.manifest.samples for p in passes) == 30
    assert asm.finished
    assert passes[-1].manifest.next_offsets() == {0: 25, 1: 5}


def test_idle_partition_holds_the_pass_open():
    asm = assembler({0: 0, 1: 0}, 4)
    for chunk in chunks_of(0, *partition_log(0, 10), [10]):
        asm.offer(chunk)
    assert asm.close_pass() is None
    assert asm.buffered(0) == 10


def test_replay_from_window_boundary_reproduces_live_passes():
    logs = {p: partition_log(p, 200, step_ms=7 + 2 * p) for p in range(3)}
    live = run(assembler({p: 0 for p in logs}, 25, span=300), logs)
    # Replay the event-time range [900, 1200): first offset with time >= 900 in each partition.
    start = {p: int(np.searchsorted(np.asarray(t), 900)) for p, (_, t) in logs.items()}
    end = {p: int(np.searchsorted(np.asarray(t), 1200)) for p, (_, t) in logs.items()}
    replay = run(assembler(start, 25, span=300, end_offsets=end), logs)
    in_range = [p for p in live if p.manifest.event_time_min_ms >= 900 and p.manifest.event_time_max_ms < 1200]
    assert contents(replay) == contents(in_range) and len(replay) > 3


def test_rejects_more_partitions_than_samples():
    with pytest.raises(ValueError, match="pass_samples"):
        assembler({0: 0, 1: 0, 2: 0}, 2)
