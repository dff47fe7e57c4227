"""Incremental checkpoints of a table: a base (all the table holds) or an increment (what changed
since the previous checkpoint), read back as a chain: the base, then each increment in order.

``capture_checkpoint`` runs on the training thread between passes and costs time proportional to
what it carries: copies of the changed rows (``CHANGED`` flag), of the written ranges of the
``STACK`` arrays, of the index buckets written (or, after a rebuild, of every used bucket), the
admission filter when there is one, the counters and the random generator. The returned
:class:`TableCheckpoint` shares nothing with the live table, so it can be written from another
thread while training goes on. A base holds the rows below ``rows_high_water`` (every row ever
allocated; the rest still hold their allocation values) rather than the preallocated capacity.

The only change that an increment does not carry row by row is the pass-end score decay, which
touches every row: restoring an increment first applies ``decay_scores`` once per pass ended
since the previous checkpoint (the same float32 operation, so bit for bit), then the rows.
Files are written atomically and checksummed by ``npz_file``; nothing is pickled.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from embedding_store.index import EMPTY
from embedding_store.npz_file import read_npz_checked, write_npz_atomic
from embedding_store.score import decay_scores
from embedding_store.table_files import table_config_from_dict, table_header
from embedding_store.table_state import CHANGED, PER_ROW, STACK, RowArrays, TableCounters

if TYPE_CHECKING:
    from embedding_store.table import EmbeddingTable

Table = TypeVar("Table", bound="EmbeddingTable")
BASE = "base"
INCREMENT = "increment"
_ROWS = "rows"
_BUCKETS = "index_buckets"
_SLOT_BUCKET = "index_slot_bucket"
_FILTER = "filter_counters"


@dataclass
class TableCheckpoint:
    """One captured checkpoint of a table: arrays (copies) and a JSON header, ready to write."""

    kind: str  # BASE or INCREMENT
    pass_index: int
    previous_pass: int | None  # the checkpoint an increment applies to (None for a base)
    arrays: dict[str, np.ndarray]
    meta: dict[str, Any]

    @property
    def rows(self) -> int:
        """Rows carried (changed rows of an increment, every allocated row of a base)."""
        return int(self.arrays[_values(_ROWS, "keys")].shape[0])

    @property
    def nbytes(self) -> int:
        """Bytes of array data carried."""
        return int(sum(a.nbytes for a in self.arrays.values()))

    def write(self, path: str | Path) -> None:
        """Write the checkpoint atomically to ``path`` (safe from any thread)."""
        write_npz_atomic(Path(path), self.arrays, self.meta)


def _values(group: str, name: str = "values") -> str:
    return f"{group}.{name}"


def _positions(arrays: dict[str, np.ndarray], spans: dict[str, Any], group: str, where: slice | np.ndarray) -> None:
    """Record where ``group``'s values go: a [start, stop) span in the header, or an index array."""
    if isinstance(where, slice):
        spans[group] = [where.start, where.stop]
    else:
        arrays[_values(group, "at")] = where.astype(np.int64, copy=False)


def _span(counters_span: list[int] | None) -> slice:
    return slice(0, 0) if counters_span is None else slice(counters_span[0], counters_span[1])


def capture_checkpoint(table: EmbeddingTable, pass_index: int, base: bool) -> TableCheckpoint:
    """Capture a base (``base`` or no earlier checkpoint) or an increment and reset change tracking."""
    counters, rows, index = table.counters, table.rows, table.index
    previous = counters.last_checkpoint_pass
    if previous is not None and pass_index <= previous:
        raise ValueError(f"pass_index must exceed the last checkpoint's {previous}, got {pass_index}")
    base = base or previous is None
    high_water = counters.rows_high_water
    arrays: dict[str, np.ndarray] = {}
    spans: dict[str, Any] = {}
    if base:
        rows.flags[:high_water] &= ~CHANGED
        row_positions: slice | np.ndarray = slice(0, high_water)
        stack_spans = counters.written_ever
    else:
        row_positions = np.flatnonzero(rows.flags[:high_water] & CHANGED)  # no row above was ever allocated
        rows.flags[row_positions] &= ~CHANGED
        stack_spans = counters.written
    _positions(arrays, spans, _ROWS, row_positions)
    for name in RowArrays.names_of_kind(PER_ROW):
        values = getattr(rows, name)[row_positions]
        arrays[_values(_ROWS, name)] = values.copy() if isinstance(row_positions, slice) else values
    for name in RowArrays.names_of_kind(STACK):
        span = _span(stack_spans.get(name))
        _positions(arrays, spans, name, span)
        arrays[_values(name)] = getattr(rows, name)[span].copy()
    changed_buckets = index.take_changes()
    index_reset = base or changed_buckets is None
    if index_reset:
        changed_buckets = np.flatnonzero(index.buckets != EMPTY)
        slot_positions: slice | np.ndarray = slice(0, high_water)
    else:
        slot_positions = row_positions
    _positions(arrays, spans, _BUCKETS, changed_buckets)
    arrays[_values(_BUCKETS)] = index.buckets[changed_buckets]
    _positions(arrays, spans, _SLOT_BUCKET, slot_positions)
    arrays[_values(_SLOT_BUCKET)] = np.array(index.slot_bucket[slot_positions])
    if table.admission_filter is not None:
        arrays[_FILTER] = table.admission_filter.counters.copy()
    counters.written = {}
    counters.last_checkpoint_pass = pass_index
    _index_arrays, index_counters = index.state()
    meta = table_header(table) | counters.to_json()
    meta.update(
        kind=BASE if base else INCREMENT,
        pass_index=pass_index,
        previous_pass=None if base else previous,
        spans=spans,
        index_reset=index_reset,
        index_counters=index_counters,
        rng_state=table.rng.bit_generator.state,
    )
    return TableCheckpoint(meta["kind"], pass_index, meta["previous_pass"], arrays, meta)


def _put(target: np.ndarray, arrays: dict[str, np.ndarray], spans: dict[str, Any], group: str, name: str) -> None:
    values = arrays[_values(group, name)]
    span = spans.get(group)
    if span is not None:
        target[span[0] : span[1]] = values
    else:
        target[arrays[_values(group, "at")]] = values


def read_checkpoint_chain(paths: list[Path], table_class: type[Table]) -> Table:
    """The table at the last checkpoint of ``paths`` (a base, then its increments in order);
    ValueError naming the file if one is unreadable, corrupt or not the next link of the chain."""
    if not paths:
        raise ValueError("a checkpoint chain needs at least its base")
    table: Table | None = None
    previous: int | None = None
    for path in paths:
        arrays, meta = read_npz_checked(Path(path))
        kind = meta.get("kind")
        if table is None:
            if kind != BASE:
                raise ValueError(f"{path}: a checkpoint chain starts with a base, got kind {kind!r}")
            table = table_class(table_config_from_dict(meta["config"]), seed=int(meta["seed"]))
        else:
            if kind != INCREMENT or meta.get("previous_pass") != previous:
                raise ValueError(
                    f"{path}: expected an increment after pass {previous}, got {kind!r} after "
                    f"{meta.get('previous_pass')}; the checkpoint chain is broken"
                )
            for _ in range(int(meta["passes_ended"]) - table.counters.passes_ended):
                decay_scores(table.rows.score, table.config.score_decay)
        _apply(table, arrays, meta, str(path))
        previous = int(meta["pass_index"])
    assert table is not None
    table.index.take_changes()  # tracking starts from the restored state
    return table


def _apply(table: EmbeddingTable, arrays: dict[str, np.ndarray], meta: dict[str, Any], source: str) -> None:
    spans = meta["spans"]
    rows, index = table.rows, table.index
    for name in RowArrays.names_of_kind(PER_ROW):
        _put(getattr(rows, name), arrays, spans, _ROWS, name)
    for name in RowArrays.names_of_kind(STACK):
        _put(getattr(rows, name), arrays, spans, name, "values")
    if meta["index_reset"]:
        index.buckets.fill(EMPTY)
    _put(index.buckets, arrays, spans, _BUCKETS, "values")
    _put(index.slot_bucket, arrays, spans, _SLOT_BUCKET, "values")
    index.live, index.tombstones = int(meta["index_counters"]["live"]), int(meta["index_counters"]["tombstones"])
    if table.admission_filter is not None:
        table.admission_filter.counters[...] = arrays[_FILTER]
    table.counters = TableCounters.from_json(meta, source)
    table.rng.bit_generator.state = meta["rng_state"]
