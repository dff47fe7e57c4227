"""A table's state as data: its row arrays and its counters, each one dataclass.

Checkpoints, restores and exports iterate these dataclasses' fields; adding a field here is all
it takes for it to be saved and restored. Arrays are preallocated at capacity (``TableLayout``);
counters are plain Python values written as JSON. Times are event-time ticks of
``TableConfig.time_resolution_ms``.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from embedding_store.config import TableConfig
from embedding_store.eviction import EvictionReason
from embedding_store.layout import TableLayout

REJECTION_REASONS = ("count", "probability", "full")
DIRTY = np.uint8(1)  # row changed since the last export
TOUCHED = np.uint8(2)  # row looked up (train=True) since the last end_pass


@dataclass
class RowArrays:
    """Every per-row array of a table (the index and the admission filter keep their own)."""

    keys: np.ndarray  # uint64 [capacity + 2]; 0 = free row; two spare zeros for the index's empty/tombstone reads
    weights: np.ndarray  # float32 [capacity + 1, dim]; the last row is the default vector
    accumulator: np.ndarray  # float32 [capacity] (row-wise AdaGrad) or [capacity, dim]
    score: np.ndarray  # float32 [capacity]; +inf marks a free row
    last_seen: np.ndarray  # uint32 [capacity], ticks
    created: np.ndarray  # uint32 [capacity], ticks
    updates: np.ndarray  # uint16 [capacity], AdaGrad updates (saturating)
    flags: np.ndarray  # uint8 [capacity], DIRTY | TOUCHED bits
    free: np.ndarray  # int32 [capacity], stack of free slots (the top ``free_count`` are free)
    deletion_log: np.ndarray  # uint64 [log capacity], keys deleted since the last export

    @classmethod
    def allocate(cls, layout: TableLayout, config: TableConfig) -> RowArrays:
        """Zeroed arrays for ``layout``: every row free, the default vector set."""
        capacity, dim = layout.capacity, layout.dim
        weights = np.zeros((capacity + 1, dim), dtype=np.float32)
        weights[capacity] = config.default_value
        return cls(
            keys=np.zeros(capacity + 2, dtype=np.uint64),
            weights=weights,
            accumulator=np.zeros((capacity,) if layout.accumulator_width == 1 else (capacity, dim), dtype=np.float32),
            score=np.full(capacity, np.inf, dtype=np.float32),
            last_seen=np.zeros(capacity, dtype=np.uint32),
            created=np.zeros(capacity, dtype=np.uint32),
            updates=np.zeros(capacity, dtype=np.uint16),
            flags=np.zeros(capacity, dtype=np.uint8),
            free=np.arange(capacity - 1, -1, -1, dtype=np.int32),  # slot 0 pops first
            deletion_log=np.zeros(layout.deletion_log_capacity, dtype=np.uint64),
        )

    def as_dict(self) -> dict[str, np.ndarray]:
        """Field name -> array (the arrays themselves, not copies)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def restore(self, arrays: dict[str, np.ndarray], source: str) -> None:
        """Copy ``arrays`` (one per field, same shapes and dtypes) into these arrays."""
        for name, target in self.as_dict().items():
            if name not in arrays:
                raise ValueError(f"{source}: array {name} is missing")
            values = arrays[name]
            if values.shape != target.shape or values.dtype != target.dtype:
                raise ValueError(
                    f"{source}: array {name} has shape {values.shape} {values.dtype}, "
                    f"expected {target.shape} {target.dtype}"
                )
            target[...] = values


def _zero_counts(names: typing.Iterable[str]) -> dict[str, int]:
    return dict.fromkeys(names, 0)


@dataclass
class TableCounters:
    """Every scalar and small map of a table's state besides the arrays (JSON in checkpoints)."""

    free_count: int  # rows free (the top of ``RowArrays.free``)
    log_count: int = 0  # keys in the deletion log
    log_overflow: bool = False  # more deletions than the log holds: the next export is a snapshot
    admissions: int = 0  # rows created, cumulative
    lookups: int = 0  # keys looked up (train and eval), cumulative
    updated_rows: int = 0  # unique rows updated by apply_gradients, cumulative
    passes_ended: int = 0
    evictions: dict[str, int] = field(default_factory=lambda: _zero_counts(r.value for r in EvictionReason))
    rejections: dict[str, int] = field(default_factory=lambda: _zero_counts(REJECTION_REASONS))
    rows_per_tag: dict[int, int] = field(default_factory=dict)  # feature tag -> live rows
    tag_names: dict[int, str] = field(default_factory=dict)  # feature tag -> feature name
    export_dir: str | None = None  # resolved directory of the last export
    last_export_pass: int | None = None
    last_snapshot_pass: int | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready values (map keys become strings)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = {str(k): v for k, v in value.items()} if isinstance(value, dict) else value
        return out

    @classmethod
    def from_json(cls, values: dict[str, Any], source: str) -> TableCounters:
        """The counters ``to_json`` wrote, keys and values converted back to their declared types."""
        hints = typing.get_type_hints(cls)
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in values:
                raise ValueError(f"{source}: counter {f.name} is missing")
            value = values[f.name]
            if typing.get_origin(hints[f.name]) is dict:
                key_type, value_type = typing.get_args(hints[f.name])
                value = {key_type(k): value_type(v) for k, v in value.items()}
            kwargs[f.name] = value
        return cls(**kwargs)
