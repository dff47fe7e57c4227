"""How a byte budget is split into preallocated arrays: capacity is derived once, at construction."""

from __future__ import annotations

import math
from dataclasses import dataclass

from embedding_store.config import TableConfig

# Per-row metadata (bytes): key uint64 8, score float32 4, last-seen uint32 4, creation uint32 4,
# update count uint16 2, flags uint8 1 (dirty, touched this pass), free-list entry int32 4,
# index bucket of the row int32 4.
METADATA_BYTES_PER_ROW = 8 + 4 + 4 + 4 + 2 + 1 + 4 + 4
SLOT_BUCKET_BYTES = 4  # the part of the metadata that the index owns
INDEX_BUCKET_BYTES = 4  # int32 slot per bucket
DELETION_LOG_ENTRY_BYTES = 8  # uint64 key
FILTER_ROWS = 2  # hash functions of the counting filter, one uint8 counter row each
_SLACK_BYTES = 256  # absorbs the rounding up of bucket and log counts


@dataclass(frozen=True)
class TableLayout:
    """Sizes (rows, buckets, bytes) of every preallocated array of a table."""

    dim: int
    capacity: int  # rows
    n_buckets: int
    deletion_log_capacity: int  # keys
    filter_width: int  # counters per filter row (0 = no filter)
    accumulator_width: int  # floats per row: 1 (row-wise AdaGrad) or dim

    @property
    def row_bytes(self) -> int:
        """Bytes of one live row: weights + optimizer state + metadata."""
        return 4 * self.dim + 4 * self.accumulator_width + METADATA_BYTES_PER_ROW

    @property
    def index_bytes(self) -> int:
        return self.n_buckets * INDEX_BUCKET_BYTES

    @property
    def filter_bytes(self) -> int:
        return self.filter_width * FILTER_ROWS

    @property
    def deletion_log_bytes(self) -> int:
        return self.deletion_log_capacity * DELETION_LOG_ENTRY_BYTES

    @property
    def fixed_bytes(self) -> int:
        """Bytes that do not depend on the number of live rows (index, filter, log, default vector)."""
        return self.index_bytes + self.filter_bytes + self.deletion_log_bytes + 4 * self.dim

    @property
    def allocated_bytes(self) -> int:
        """Bytes of every preallocated array at full capacity."""
        return self.fixed_bytes + self.capacity * self.row_bytes

    def used_bytes(self, rows: int) -> int:
        """Accounted bytes with ``rows`` live rows."""
        return self.fixed_bytes + rows * self.row_bytes

    def bytes_by_component(self, rows: int) -> dict[str, int]:
        """Bytes of ``rows`` live rows and of the fixed arrays, by component (the default row included
        in the weights)."""
        return {
            "weights": 4 * self.dim * (rows + 1),
            "optimizer": 4 * self.accumulator_width * rows,
            "metadata": (self.row_bytes - 4 * self.dim - 4 * self.accumulator_width) * rows,
            "index": self.index_bytes,
            "admission_filter": self.filter_bytes,
            "deletion_log": self.deletion_log_bytes,
        }

    def rows_within(self, byte_limit: float) -> int:
        """Most live rows whose accounted bytes stay <= ``byte_limit``."""
        return max(0, min(self.capacity, math.floor((byte_limit - self.fixed_bytes) / self.row_bytes)))

    @staticmethod
    def from_config(config: TableConfig) -> TableLayout:
        """Largest capacity whose arrays all fit in ``config.budget_bytes``."""
        accumulator_width = 1 if config.row_wise_adagrad else config.dim
        filter_bytes = config.admission_filter_bytes or max(64, config.budget_bytes // 32)
        filter_width = filter_bytes // FILTER_ROWS if config.admission_min_count > 1 else 0
        per_row = (
            4 * config.dim
            + 4 * accumulator_width
            + METADATA_BYTES_PER_ROW
            + INDEX_BUCKET_BYTES / config.index_load_factor
            + DELETION_LOG_ENTRY_BYTES * config.deletion_log_fraction
        )
        available = config.budget_bytes - _SLACK_BYTES - FILTER_ROWS * filter_width - 4 * config.dim
        capacity = math.floor(available / per_row)
        if capacity < 1:
            raise ValueError(
                f"budget_bytes must hold at least one row (~{math.ceil(per_row)} B each plus "
                f"{config.budget_bytes - available} B fixed), got {config.budget_bytes}"
            )
        layout = TableLayout(
            dim=config.dim,
            capacity=capacity,
            n_buckets=max(2, math.ceil(capacity / config.index_load_factor)),
            deletion_log_capacity=max(1, math.ceil(capacity * config.deletion_log_fraction)),
            filter_width=filter_width,
            accumulator_width=accumulator_width,
        )
        assert layout.allocated_bytes <= config.budget_bytes  # guaranteed by _SLACK_BYTES
        return layout
