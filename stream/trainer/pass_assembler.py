"""Cut the per-partition streams of decoded samples into passes, deterministically.

A pass takes from every partition a contiguous run of messages starting where the previous pass
stopped, and stops each run at the first of: the partition's quota of ``pass_samples`` (split
evenly over the partitions), a message outside the pass's event-time window, or the partition's
end offset (replay). The pass's window is the aligned window ``[k * span, (k + 1) * span)`` of the
earliest head message over all partitions; late messages (an earlier window) join the current
pass. Every rule reads only the messages themselves, never arrival timing, so a restart from a
checkpoint or a replay from a window boundary cuts exactly the same passes.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from pepnet.batch import SampleBatch
from stream.trainer.batch_rows import take_rows
from stream.trainer.dedup import DedupWindow
from stream.trainer.manifest import PartitionRange, PassManifest


@dataclass
class DecodedChunk:
    """Consecutive messages of one partition, decoded. ``offsets[i]`` is the offset of row ``i``.

    ``next_position`` is the offset after the last message read (undecodable ones included).
    """

    partition: int
    offsets: np.ndarray  # int64 [n]
    batch: SampleBatch
    next_position: int


@dataclass
class AssembledPass:
    """A closed pass: its samples (deduplicated, in event-time order) and its manifest.

    ``partitions[i]`` and ``offsets[i]`` say where row ``i`` of ``batch`` was read: rows are sorted
    by (event time, partition, offset), the order in which N trainer processes merge their passes.
    """

    batch: SampleBatch
    manifest: PassManifest
    partitions: np.ndarray  # int64 [n]
    offsets: np.ndarray  # int64 [n]


Plans = dict[int, list[tuple["_Pending", int]]]


@dataclass
class _Pending:
    chunk: DecodedChunk
    cursor: int = 0


class PassAssembler:
    """Buffers decoded chunks per partition and closes passes (see the module docstring).

    ``next_offsets`` maps every partition to the offset where its next pass starts (from the
    checkpoint); ``end_offsets`` (replay, catch-up) marks the offset where a partition ends.
    ``quota`` (messages per partition and pass) defaults to ``pass_samples`` split over these
    partitions; a trainer process reading some of the topic's partitions passes the quotas of
    the whole topic's split (``pass_quotas``), so that N processes cut the passes of one; such a
    process may take no row in a pass, and its pass is then ``empty_batch`` (zero rows).
    """

    def __init__(
        self,
        topic: str,
        next_offsets: dict[int, int],
        pass_samples: int,
        pass_event_time_ms: int,
        dedup: DedupWindow,
        task_names: list[str],
        domain_names: list[str],
        first_pass_index: int = 0,
        end_offsets: dict[int, int] | None = None,
        quota: dict[int, int] | None = None,
        empty_batch: SampleBatch | None = None,
    ) -> None:
        if not next_offsets:
            raise ValueError("next_offsets must name at least one partition")
        self.topic = topic
        self.partitions = sorted(next_offsets)
        self.next_offsets = dict(next_offsets)
        self.span_ms = pass_event_time_ms
        self.dedup = dedup
        self.task_names = list(task_names)
        self.domain_names = list(domain_names)
        self.pass_index = first_pass_index
        self.end_offsets = dict(end_offsets) if end_offsets is not None else None
        quotas = quota if quota is not None else pass_quotas(pass_samples, self.partitions)
        self.quota = {p: quotas[p] for p in self.partitions}
        self.empty_batch = empty_batch
        self._pending: dict[int, deque[_Pending]] = {p: deque() for p in self.partitions}
        self._read_position = dict(self.next_offsets)

    def offer(self, chunk: DecodedChunk) -> None:
        """Add a chunk read from Kafka (rows before the partition's next offset are ignored)."""
        if chunk.partition not in self._pending:
            raise ValueError(f"partition {chunk.partition} is not assigned to this assembler ({self.partitions})")
        p = chunk.partition
        self._read_position[p] = max(self._read_position[p], chunk.next_position)
        if self.end_offsets is not None:
            # Messages past the end offset (captured when a replay started) belong to no pass here.
            stop = int(np.searchsorted(chunk.offsets, self.end_offsets.get(p, 0)))
            if stop < len(chunk.offsets):
                chunk = DecodedChunk(p, chunk.offsets[:stop], chunk.batch.slice(0, stop), chunk.next_position)
        start = int(np.searchsorted(chunk.offsets, self._expected_offset(p)))
        if start < len(chunk.offsets):
            self._pending[p].append(_Pending(chunk, start))

    def buffered(self, partition: int) -> int:
        """Messages of ``partition`` buffered and not yet in a pass."""
        return sum(len(p.chunk.offsets) - p.cursor for p in self._pending[partition])

    def exhausted(self, partition: int) -> bool:
        """True when the partition reached its end offset and every buffered message is in a pass."""
        if self.end_offsets is None or self._pending[partition]:
            return False
        return self._read_to_end(partition)

    @property
    def finished(self) -> bool:
        """True when every partition is exhausted (only with end offsets)."""
        return self.end_offsets is not None and all(self.exhausted(p) for p in self.partitions)

    def close_pass(self) -> AssembledPass | None:
        """The next pass if the buffered messages decide it, else None (more data needed)."""
        window = self.head_window()
        if window is None:
            return None
        plans = self.plan(window)
        if plans is None or not planned_rows(plans):
            return None
        return self.build(plans, window)

    def head_window(self) -> int | None:
        """The event-time window of the earliest head message over the partitions, or None when a
        partition's head is not read yet (or every partition is exhausted)."""
        return self._current_window()

    def plan(self, window: int) -> Plans | None:
        """How many rows each partition gives to the pass of ``window``, or None when undecided."""
        takes: Plans = {}
        for p in self.partitions:
            plan = self._plan(p, window)
            if plan is None:
                return None
            takes[p] = plan
        return takes

    def build(self, plans: Plans, window: int) -> AssembledPass:
        """Close the pass that ``plans`` (from :meth:`plan`) describes."""
        return self._build(plans, window)

    def _expected_offset(self, partition: int) -> int:
        pending = self._pending[partition]
        if pending:
            last = pending[-1].chunk
            return int(last.offsets[-1]) + 1
        return self.next_offsets[partition]

    def _window_of(self, event_time_ms: np.ndarray) -> np.ndarray:
        if self.span_ms == 0:
            return np.zeros(len(event_time_ms), dtype=np.int64)
        return event_time_ms // self.span_ms

    def _current_window(self) -> int | None:
        heads = []
        for p in self.partitions:
            pending = self._pending[p]
            if pending:
                head = pending[0]
                heads.append(int(self._window_of(head.chunk.batch.event_time_ms[head.cursor : head.cursor + 1])[0]))
            elif not self.exhausted(p):
                return None  # this partition's head is unknown yet: it may hold the earliest window
        return min(heads) if heads else None

    def _plan(self, partition: int, window: int) -> list[tuple[_Pending, int]] | None:
        """How many rows to take from each pending chunk, or None when undecided."""
        remaining = self.quota[partition]
        plan: list[tuple[_Pending, int]] = []
        for pending in self._pending[partition]:
            if remaining == 0:
                return plan
            chunk, cursor = pending.chunk, pending.cursor
            n = min(remaining, len(chunk.offsets) - cursor)
            windows = self._window_of(chunk.batch.event_time_ms[cursor : cursor + n])
            beyond = np.flatnonzero(windows > window)
            if len(beyond):
                plan.append((pending, int(beyond[0])))
                return plan
            plan.append((pending, n))
            remaining -= n
        if remaining == 0 or self._read_to_end(partition):
            return plan
        return None

    def _read_to_end(self, partition: int) -> bool:
        """True when every message of the partition up to its end offset has been offered."""
        if self.end_offsets is None:
            return False
        end = self.end_offsets.get(partition, 0)
        return self._read_position[partition] >= end or self.next_offsets[partition] >= end

    def _build(self, takes: Plans, window: int) -> AssembledPass:
        pieces: list[SampleBatch] = []
        where: list[np.ndarray] = []
        ranges: list[PartitionRange] = []
        for p in self.partitions:
            start = self.next_offsets[p]
            end = start
            taken = 0
            for pending, n in takes[p]:
                if n == 0:
                    continue
                rows = slice(pending.cursor, pending.cursor + n)
                pieces.append(pending.chunk.batch.slice(rows.start, rows.stop))
                where.append(np.stack([np.full(n, p, dtype=np.int64), pending.chunk.offsets[rows]], axis=1))
                end = int(pending.chunk.offsets[rows.stop - 1]) + 1
                pending.cursor += n
                taken += n
            while self._pending[p] and self._pending[p][0].cursor >= len(self._pending[p][0].chunk.offsets):
                self._pending[p].popleft()
            ranges.append(PartitionRange(p, start, end, taken))
            self.next_offsets[p] = end
        if not pieces:
            if self.empty_batch is None:
                raise ValueError("a pass without rows needs the assembler's empty_batch")
            pieces, where = [self.empty_batch], [np.zeros((0, 2), dtype=np.int64)]
        merged = SampleBatch.concat(pieces)
        order = np.argsort(merged.event_time_ms, kind="stable")
        ordered = take_rows(merged, order)
        keep = self.dedup.keep_mask(ordered.sample_id)
        batch = ordered if keep.all() else take_rows(ordered, np.flatnonzero(keep))
        self.dedup.close_pass(batch.sample_id)
        manifest = self._manifest(batch, ranges, len(merged), window)
        self.pass_index += 1
        origin = np.concatenate(where)[order][keep]
        return AssembledPass(batch, manifest, origin[:, 0].copy(), origin[:, 1].copy())

    def _manifest(self, batch: SampleBatch, ranges: list[PartitionRange], messages: int, window: int) -> PassManifest:
        domains = np.bincount(batch.domain, minlength=len(self.domain_names))
        observed = batch.label_mask.sum(axis=0)
        positives = ((batch.labels > 0.5) & batch.label_mask).sum(axis=0)
        times = batch.event_time_ms
        return PassManifest(
            pass_index=self.pass_index,
            topic=self.topic,
            ranges=ranges,
            messages=messages,
            duplicates=messages - len(batch),
            samples=len(batch),
            event_time_min_ms=int(times.min()) if len(times) else 0,
            event_time_max_ms=int(times.max()) if len(times) else 0,
            window_start_ms=window * self.span_ms if self.span_ms else None,
            samples_by_domain={d: int(domains[i]) for i, d in enumerate(self.domain_names)},
            observed_by_task={t: int(observed[i]) for i, t in enumerate(self.task_names)},
            positives_by_task={t: int(positives[i]) for i, t in enumerate(self.task_names)},
        )


def pass_quotas(pass_samples: int, partitions: list[int]) -> dict[int, int]:
    """Messages per pass from each of ``partitions`` (sorted): ``pass_samples`` split evenly."""
    if pass_samples < len(partitions):
        raise ValueError(f"pass_samples must be >= the number of partitions ({len(partitions)}), got {pass_samples}")
    ordered = sorted(partitions)
    base, extra = divmod(pass_samples, len(ordered))
    return {p: base + (1 if i < extra else 0) for i, p in enumerate(ordered)}


def planned_rows(plans: Plans) -> int:
    """Rows a plan of :meth:`PassAssembler.plan` takes."""
    return sum(n for plan in plans.values() for _, n in plan)
