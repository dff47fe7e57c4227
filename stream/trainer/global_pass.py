"""One pass as every trainer process sees it: the rows of all ranks in the order one process uses.

Each rank holds its own rows of a pass, sorted by (event time, partition, offset). Once per pass
the ranks exchange a few columns of every row (event time, partition, offset, domain, labels and
label mask: ~30 bytes a sample) and order them by (event time, partition, offset), which is the
order a single trainer process trains in. Mini-batch k of the pass is rows ``[k*B, (k+1)*B)`` of
that order: each rank trains its own rows of it (a contiguous run of its rows, maybe none) and
knows the domains and labels of the whole mini-batch (for the domain statistics and the loss
weights); predictions are put back into the global order the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from stream.trainer.pass_assembler import AssembledPass
from stream.trainer.rank_group import RankGroup


@dataclass
class GlobalPass:
    """The global order of a pass's rows and this rank's place in it (see the module docstring)."""

    event_time_ms: np.ndarray  # int64 [size], in global order
    domain: np.ndarray  # int64 [size]
    labels: np.ndarray  # float32 [size, tasks]
    label_mask: np.ndarray  # bool [size, tasks]
    local_positions: np.ndarray  # int64 [rows of this rank]: global position of each, ascending
    rank_positions: list[np.ndarray]  # global positions of every rank's rows, by rank

    @property
    def size(self) -> int:
        """Samples of the pass over all ranks."""
        return int(self.domain.shape[0])

    @staticmethod
    def of(closed: AssembledPass, group: RankGroup) -> GlobalPass:
        """The global view of ``closed`` (this rank's part); a collective when the group has N > 1."""
        batch = closed.batch
        if not group.distributed:
            everything = np.arange(len(batch), dtype=np.int64)
            return GlobalPass(
                batch.event_time_ms, batch.domain, batch.labels, batch.label_mask, everything, [everything]
            )
        tasks = batch.labels.shape[1]
        columns = np.empty(
            len(batch),
            dtype=[("where", "<i8", (4,)), ("labels", "<f4", (tasks,)), ("label_mask", "?", (tasks,))],
        )
        columns["where"] = np.stack([batch.event_time_ms, closed.partitions, closed.offsets, batch.domain], axis=1)
        columns["labels"], columns["label_mask"] = batch.labels, batch.label_mask
        parts = group.all_gather_rows(columns)
        rows = np.concatenate(parts)
        where = rows["where"]
        order = np.lexsort((where[:, 2], where[:, 1], where[:, 0]))  # event time, then partition, then offset
        position = np.empty(order.shape[0], dtype=np.int64)
        position[order] = np.arange(order.shape[0], dtype=np.int64)
        starts = np.cumsum([0] + [part.shape[0] for part in parts])
        rank_positions = [position[starts[r] : starts[r + 1]] for r in range(group.world_size)]
        ordered = rows[order]
        return GlobalPass(
            event_time_ms=np.ascontiguousarray(ordered["where"][:, 0]),
            domain=np.ascontiguousarray(ordered["where"][:, 3]),
            labels=np.ascontiguousarray(ordered["labels"]),
            label_mask=np.ascontiguousarray(ordered["label_mask"]),
            local_positions=rank_positions[group.rank],
            rank_positions=rank_positions,
        )

    def batches(self, batch_size: int) -> int:
        """Mini-batches of ``batch_size`` samples in the pass (the last one may be short)."""
        return -(-self.size // batch_size)

    def global_rows(self, index: int, batch_size: int) -> slice:
        """Global positions of mini-batch ``index``."""
        return slice(index * batch_size, min(self.size, (index + 1) * batch_size))

    def local_rows(self, index: int, batch_size: int) -> tuple[int, int]:
        """This rank's rows ``[start, stop)`` of mini-batch ``index`` (start == stop: none)."""
        rows = self.global_rows(index, batch_size)
        start, stop = np.searchsorted(self.local_positions, [rows.start, rows.stop])
        return int(start), int(stop)

    def gather(self, local_values: np.ndarray, group: RankGroup) -> np.ndarray:
        """Every rank's per-row ``local_values`` (this rank's rows, in its order) in the global order."""
        if not group.distributed:
            return local_values
        parts = group.all_gather_rows(local_values)
        out = np.empty((self.size, *local_values.shape[1:]), dtype=local_values.dtype)
        for positions, values in zip(self.rank_positions, parts, strict=True):
            out[positions] = values
        return out
