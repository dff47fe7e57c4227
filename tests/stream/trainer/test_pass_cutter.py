"""N ranks cut the passes one process cuts: two processes (gloo on loopback), each offered its own
partitions' chunks in random sizes and order, agree on every pass; merged, their manifests equal a
single assembler's, with an event-time window and a final partial pass (end offsets)."""

import numpy as np
import pytest

from embedding_store.shard_exchange import ShardExchange
from stream.config.errors import UserError
from stream.trainer.dedup import DedupWindow
from stream.trainer.manifest import PassManifest, merge_manifests
from stream.trainer.pass_assembler import PassAssembler, pass_quotas
from stream.trainer.pass_cutter import PassCutter, assign_partitions, plan_reads
from stream.trainer.rank_group import RankGroup
from tests.process_group import run_in_ranks

from .sample_chunks import DOMAINS, TASKS, chunks_of, make_batch, partition_log

PARTITIONS, MESSAGES, PASS_SAMPLES, SPAN_MS = 5, 60, 40, 150


def logs():
    return {p: partition_log(p, MESSAGES + 7 * p, step_ms=5 + p) for p in range(PARTITIONS)}


def assembler_of(partitions):
    data = logs()
    return PassAssembler(
        "samples", {p: 0 for p in partitions}, PASS_SAMPLES, SPAN_MS, DedupWindow(2), TASKS, DOMAINS,
        end_offsets={p: len(data[p][0]) for p in partitions}, quota=pass_quotas(PASS_SAMPLES, list(range(PARTITIONS))),
        empty_batch=make_batch([], []),
    )  # fmt: skip


def cut_on_rank(rank: int, world_size: int) -> list[dict]:
    group = RankGroup(rank, world_size, rank, ShardExchange())
    mine = assign_partitions(list(range(PARTITIONS)), world_size, "samples")[rank]
    assembler = assembler_of(mine)
    rng = np.random.default_rng(rank)
    # Each partition's chunks in order, of random sizes; partitions interleaved at random.
    by_partition = {p: chunks_of(p, *logs()[p], list(rng.integers(1, 15, size=100))) for p in mine}
    cutter = PassCutter(assembler, group)
    manifests = []
    while True:
        cut = cutter.next(idle_s=0.0)
        if cut.closed is not None:
            manifests.append(cut.closed.manifest.to_dict())
            continue
        if cut.finished:
            return manifests
        live = [p for p, chunks in by_partition.items() if chunks]
        if live:
            assembler.offer(by_partition[live[int(rng.integers(len(live)))]].pop(0))


def test_two_ranks_cut_the_passes_of_one_assembler():
    ranks = run_in_ranks(cut_on_rank, 2)
    single = assembler_of(list(range(PARTITIONS)))
    for p, (ids, times) in logs().items():
        for chunk in chunks_of(p, ids, times, [9] * 100):
            single.offer(chunk)
    expected = []
    while (closed := single.close_pass()) is not None:
        expected.append(closed.manifest)
    assert len(ranks[0]) == len(ranks[1]) == len(expected) > 5
    merged = [merge_manifests([PassManifest.from_dict(m) for m in parts]) for parts in zip(*ranks, strict=True)]
    assert [m.to_dict() for m in merged] == [m.to_dict() for m in expected]


def test_partitions_are_dealt_round_robin():
    assert assign_partitions([3, 0, 2, 1, 4], 2, "t") == [[0, 2, 4], [1, 3]]
    assert assign_partitions([0, 1], 1, "t") == [[0, 1]]
    with pytest.raises(UserError, match="exceeds the 2 partitions of topic t"):
        assign_partitions([0, 1], 3, "t")


def test_a_rank_reads_its_partitions_from_the_checkpoint_or_the_low_watermark():
    watermarks = {0: (0, 50), 1: (10, 60), 2: (0, 70)}
    rank1 = RankGroup(1, 2)
    plan = plan_reads(watermarks, rank1, "t", 30, committed={1: 5, 2: 40}, assignment=None, stop_at_end=True)
    assert plan.partitions == [1]  # round-robin: rank 0 reads 0 and 2
    assert plan.start == {1: 10}  # offsets below the low watermark were deleted by retention
    assert plan.end == {1: 60} and plan.quota == {0: 10, 1: 10, 2: 10}
    recorded = plan_reads(watermarks, rank1, "t", 30, committed={}, assignment=[[1], [0, 2]])
    assert recorded.partitions == [0, 2] and recorded.start == {0: 0, 2: 0} and recorded.end is None
    stale = plan_reads({**watermarks, 3: (0, 5)}, rank1, "t", 30, committed={}, assignment=[[1], [0, 2]])
    assert stale.partitions == [1, 3]  # the topic gained a partition: dealt anew
