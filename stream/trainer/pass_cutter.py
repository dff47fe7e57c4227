"""Passes cut together by N trainer processes, each reading a fixed, disjoint set of partitions.

Partitions are assigned round-robin over the sorted partition ids (rank r reads the r-th,
(r+N)-th, ... partition), from the checkpoint's record when the world size is unchanged, never by
consumer-group rebalances. Every rank runs a :class:`PassAssembler` over its partitions with the
per-partition quotas of the whole topic; the ranks then agree on each pass with two small
all_gathers: the earliest head window over all partitions, then whether every partition's share
of that window is decided. So N processes cut exactly the passes one process would: the same
ranges, the same samples, whatever the timing of their reads.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from stream.config.errors import UserError
from stream.kafka.config import KafkaConfig
from stream.trainer.pass_assembler import AssembledPass, PassAssembler, pass_quotas, planned_rows
from stream.trainer.rank_group import RankGroup
from stream.trainer.sample_reader import partition_offsets

log = logging.getLogger(__name__)

_UNDECIDED = -1  # a partition's head is not read yet
_NO_HEAD = 2**62  # every partition of this rank is read to its end offset


def assign_partitions(partitions: list[int], world_size: int, topic: str) -> list[list[int]]:
    """Partitions of each rank: round-robin over the sorted ids; UserError if a rank would get none."""
    ordered = sorted(partitions)
    if world_size > len(ordered):
        raise UserError(
            f"world size {world_size} exceeds the {len(ordered)} partitions of topic {topic}: every trainer "
            "process reads at least one partition (add partitions to the topic or start fewer processes)"
        )
    return [ordered[rank::world_size] for rank in range(world_size)]


@dataclass
class ReadPlan:
    """What one rank reads: its partitions, their start offsets, their end offsets (None: no end),
    and every partition's share of a pass (the quotas of the whole topic)."""

    partitions: list[int]
    start: dict[int, int]
    end: dict[int, int] | None
    quota: dict[int, int]


def shared_watermarks(kafka: KafkaConfig, topic: str, group: RankGroup) -> dict[int, tuple[int, int]]:
    """Partition -> (low, high) watermark offsets of ``topic``, read once by rank 0 for every rank."""
    watermarks = partition_offsets(kafka, topic) if group.is_root else {}
    if group.distributed:
        shared = group.broadcast_json({str(p): list(w) for p, w in watermarks.items()})
        watermarks = {int(p): (int(w[0]), int(w[1])) for p, w in shared.items()}
    return watermarks


def plan_reads(
    watermarks: dict[int, tuple[int, int]],
    group: RankGroup,
    topic: str,
    pass_samples: int,
    committed: dict[int, int],
    assignment: list[list[int]] | None,
    start_offsets: dict[int, int] | None = None,
    end_offsets: dict[int, int] | None = None,
    stop_at_end: bool = False,
) -> ReadPlan:
    """This rank's :class:`ReadPlan` for a topic of ``watermarks`` (partition -> (low, high)): the
    checkpoint's ``assignment`` while it covers the topic's partitions (else a new one), start at
    ``start_offsets`` or the ``committed`` offsets or the low watermark (never below it), end at
    ``end_offsets`` or, with ``stop_at_end``, at the high watermarks."""
    partitions = sorted(watermarks)
    if pass_samples < len(partitions):
        raise UserError(
            f"trainer.pass_samples = {pass_samples} is less than the {len(partitions)} partitions of {topic} "
            f"(a pass takes a share of every partition); set it to {len(partitions)} or more"
        )
    if assignment is None or sorted(p for ps in assignment for p in ps) != partitions:
        assignment = assign_partitions(partitions, group.world_size, topic)
    mine = assignment[group.rank]
    start: dict[int, int] = {}
    for p in mine:
        low = watermarks[p][0]
        given = start_offsets.get(p) if start_offsets is not None else None
        start[p] = given if given is not None else committed.get(p, low)
        if start[p] < low:
            log.warning("partition %d: offsets before %d were deleted by retention; starting there", p, low)
            start[p] = low
    end = None
    if end_offsets is not None:
        end = {p: o for p, o in end_offsets.items() if p in start}
    elif stop_at_end:
        end = {p: watermarks[p][1] for p in mine}
    return ReadPlan(mine, start, end, pass_quotas(pass_samples, partitions))


@dataclass
class Cut:
    """What the ranks decided: a closed pass (this rank's part), or why not."""

    closed: AssembledPass | None
    finished: bool  # every partition of every rank is read to its end offset
    idle_s: float  # the shortest time any rank has gone without new data
    stop: bool = False  # some rank was asked to stop (SIGTERM): every rank stops here


class PassCutter:
    """Closes passes of ``assembler`` in agreement with the other ranks of ``group``."""

    def __init__(self, assembler: PassAssembler, group: RankGroup) -> None:
        self.assembler = assembler
        self.group = group

    def next(self, idle_s: float, stopping: bool = False) -> Cut:
        """The next pass if every rank's buffered messages decide it (a collective with N > 1), or
        the order to stop when ``stopping`` holds on any rank."""
        assembler = self.assembler
        if not self.group.distributed:
            if stopping:
                return Cut(None, False, idle_s, stop=True)
            closed = assembler.close_pass()
            return Cut(closed, closed is None and assembler.finished, idle_s)
        head = assembler.head_window()
        finished = assembler.finished
        local = head if head is not None else (_NO_HEAD if finished else _UNDECIDED)
        states = self.group.all_gather_ints([local, int(finished), int(idle_s * 1000), int(stopping)])
        heads, everyone_finished, idle = states[:, 0], bool(states[:, 1].all()), float(states[:, 2].min()) / 1000
        if states[:, 3].any():
            return Cut(None, everyone_finished, idle, stop=True)
        if (heads == _UNDECIDED).any() or (heads == _NO_HEAD).all():
            return Cut(None, everyone_finished, idle)
        window = int(heads.min())
        plans = assembler.plan(window)
        decided = self.group.all_gather_ints([plans is not None, planned_rows(plans) if plans is not None else 0])
        if plans is None or not decided[:, 0].all() or decided[:, 1].sum() == 0:
            return Cut(None, False, idle)
        return Cut(assembler.build(plans, window), False, idle)
