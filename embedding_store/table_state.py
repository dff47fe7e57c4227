"""A table's state as data: its row arrays and its counters, each one dataclass.

Checkpoints, restores and exports iterate these dataclasses' fields; adding a field here is all
it takes for it to be saved and restored. Arrays are preallocated at capacity (``TableLayout``);
counters are plain Python values written as JSON. Times are event-time ticks of
``TableConfig.time_resolution_ms``.

Every array declares how it changes (``ARRAY_KIND`` metadata), which is what an incremental
checkpoint needs to save only what changed since the previous one (``table_checkpoint``):
``PER_ROW`` arrays are indexed by slot and a changed row carries the ``CHANGED`` flag;
``STACK`` arrays are written in contiguous ranges whose extent the counters record
(``written``); rows at or above ``rows_high_water`` were never allocated and still hold their
allocation values, so a full checkpoint (a base) stops there.
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
CHANGED = np.uint8(4)  # row changed since the last checkpoint (besides the pass-end score decay)

ARRAY_KIND = "kind"
PER_ROW = {ARRAY_KIND: "per_row"}  # indexed by slot; changes mark the row CHANGED
STACK = {ARRAY_KIND: "stack"}  # written in ranges recorded in TableCounters.written


@dataclass
class RowArrays:
    """Every per-row array of a table (the index and the admission filter keep their own)."""

    # uint64 [capacity + 2]; 0 = free row; two spare zeros for the index's empty/tombstone reads
    keys: np.ndarray = field(metadata=PER_ROW)
    # float32 [capacity + 1, dim]; the last row is the default vector
    weights: np.ndarray = field(metadata=PER_ROW)
    # float32 [capacity] (row-wise AdaGrad) or [capacity, dim]
    accumulator: np.ndarray = field(metadata=PER_ROW)
    score: np.ndarray = field(metadata=PER_ROW)  # float32 [capacity]; +inf marks a free row
    last_seen: np.ndarray = field(metadata=PER_ROW)  # uint32 [capacity], ticks
    created: np.ndarray = field(metadata=PER_ROW)  # uint32 [capacity], ticks
    updates: np.ndarray = field(metadata=PER_ROW)  # uint16 [capacity], AdaGrad updates (saturating)
    flags: np.ndarray = field(metadata=PER_ROW)  # uint8 [capacity], DIRTY | TOUCHED | CHANGED bits
    # int32 [capacity], stack of free slots (the top ``free_count`` are free)
    free: np.ndarray = field(metadata=STACK)
    deletion_log: np.ndarray = field(metadata=STACK)  # uint64 [log capacity], keys deleted since the last export

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

    @classmethod
    def names_of_kind(cls, kind: dict[str, str]) -> tuple[str, ...]:
        """Names of the fields declared ``PER_ROW`` or ``STACK``."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.metadata.get(ARRAY_KIND) == kind[ARRAY_KIND])

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
    # Change tracking for incremental checkpoints (reset by each checkpoint):
    rows_high_water: int = 0  # slots below this were allocated at least once; the rest are as allocated
    written: dict[str, list[int]] = field(default_factory=dict)  # STACK field -> [start, stop) written since
    written_ever: dict[str, list[int]] = field(default_factory=dict)  # STACK field -> [start, stop) ever written
    last_checkpoint_pass: int | None = None  # pass of the last checkpoint (None: the next one is a base)

    def note_written(self, name: str, start: int, stop: int) -> None:
        """Record that positions ``[start, stop)`` of the STACK array ``name`` were written."""
        if stop <= start:
            return
        for spans in (self.written, self.written_ever):
            span = spans.get(name)
            spans[name] = [start, stop] if span is None else [min(span[0], start), max(span[1], stop)]

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
