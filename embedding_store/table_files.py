"""A table on disk: its checkpoint file (the full exact state) and its exports (snapshot + deltas).

Both iterate the state dataclasses of ``table_state``: every ``RowArrays`` field and every
``TableCounters`` field goes into a checkpoint, and the exported row fields are ``ROW_FIELDS``.
Files are written atomically and checksummed by ``npz_file``; nothing is pickled.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from embedding_store.config import TableConfig
from embedding_store.export import (
    DELETED_FIELD,
    ROW_FIELDS,
    ExportRecord,
    TableExport,
    read_export_chain,
)
from embedding_store.npz_file import read_npz_checked, write_npz_atomic
from embedding_store.table_state import CHANGED, DIRTY, RowArrays, TableCounters

if TYPE_CHECKING:
    from embedding_store.table import EmbeddingTable

Table = TypeVar("Table", bound="EmbeddingTable")
_INDEX_PREFIX = "index_"
_FILTER_COUNTERS = "filter_counters"


def table_config_from_dict(values: dict[str, Any]) -> TableConfig:
    """The ``TableConfig`` stored in a file header (keys this version does not know are ignored)."""
    known = {field.name for field in dataclasses.fields(TableConfig)}
    return TableConfig(**{name: value for name, value in values.items() if name in known})


def table_header(table: EmbeddingTable) -> dict[str, Any]:
    """What a file needs to rebuild an empty table like ``table``: its config and seed."""
    return {"config": dataclasses.asdict(table.config), "seed": table.seed}


# ----------------------------------------------------------------- checkpoints
def write_table_state(table: EmbeddingTable, path: Path) -> None:
    """Write every array and counter of ``table`` (plus index, filter, RNG) atomically to ``path``."""
    write_npz_atomic(path, *table_state(table))


def table_state(table: EmbeddingTable) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Every array (the live arrays, not copies) and every counter of ``table``, its index, filter
    and random generator: what ``write_table_state`` saves."""
    arrays = table.rows.as_dict()
    index_arrays, index_counters = table.index.state()
    arrays.update({_INDEX_PREFIX + name: values for name, values in index_arrays.items()})
    if table.admission_filter is not None:
        arrays[_FILTER_COUNTERS] = table.admission_filter.counters
    meta = table_header(table) | table.counters.to_json()
    meta.update({_INDEX_PREFIX + name: value for name, value in index_counters.items()})
    meta["rng_state"] = table.rng.bit_generator.state
    return arrays, meta


def read_table_state(path: Path, table_class: type[Table]) -> Table:
    """The table ``write_table_state`` saved; it continues bit for bit."""
    arrays, meta = read_npz_checked(path)
    table = table_class(table_config_from_dict(meta["config"]), seed=int(meta["seed"]))
    table.rows.restore(arrays, str(path))
    index_arrays, index_counters = table.index.state()
    table.index.restore(
        {name: arrays[_INDEX_PREFIX + name] for name in index_arrays},
        {name: meta[_INDEX_PREFIX + name] for name in index_counters},
    )
    if table.admission_filter is not None:
        table.admission_filter.counters[...] = arrays[_FILTER_COUNTERS]
    table.counters = TableCounters.from_json(meta, str(path))
    table.rng.bit_generator.state = meta["rng_state"]
    return table


# ----------------------------------------------------------------- exports
def export_table(table: EmbeddingTable, model_dir: Path, pass_index: int) -> ExportRecord:
    """Write ``table``'s export of ``pass_index`` into ``model_dir`` (``capture_export``, then write)."""
    return capture_export(table, model_dir, pass_index).write()


def capture_export(table: EmbeddingTable, model_dir: Path, pass_index: int) -> TableExport:
    """Copy out ``table``'s export of ``pass_index`` for ``model_dir``: a delta (rows changed and keys
    deleted since the last export) or, every ``snapshot_every_passes`` passes, on the first export to
    a directory and after a deletion-log overflow, a snapshot (writing it prunes older exports).
    The table counts it as exported at once; the copy is written later, from any thread."""
    counters, rows = table.counters, table.rows
    directory = str(model_dir.resolve())
    same_dir = counters.export_dir == directory
    if same_dir and counters.last_export_pass is not None and pass_index <= counters.last_export_pass:
        raise ValueError(f"pass_index must exceed the last export's {counters.last_export_pass}, got {pass_index}")
    snapshot = (
        not same_dir
        or counters.log_overflow
        or counters.last_snapshot_pass is None
        or pass_index - counters.last_snapshot_pass >= table.config.snapshot_every_passes
    )
    flags = rows.flags[: counters.rows_high_water]  # rows above were never allocated: no flag set
    if snapshot:
        slots = np.flatnonzero(rows.keys[: counters.rows_high_water] != 0)
        deleted = np.empty(0, dtype=np.uint64)
    else:
        slots = np.flatnonzero(flags & DIRTY)
        deleted = rows.deletion_log[: counters.log_count].copy()
    export = TableExport(
        model_dir=model_dir,
        kind="snapshot" if snapshot else "delta",
        pass_index=pass_index,
        previous_pass=None if snapshot else counters.last_export_pass,
        rows=table.row_fields(slots),
        deleted_keys=deleted,
        meta=table_header(table),
        keep_snapshots=table.config.keep_snapshots,
    )
    # Clearing DIRTY changes those rows' flags: the next checkpoint carries them.
    np.bitwise_or(flags, CHANGED, out=flags, where=(flags & DIRTY) != 0)
    flags &= ~DIRTY
    counters.log_count = 0
    counters.log_overflow = False
    counters.export_dir = directory
    counters.last_export_pass = pass_index
    if snapshot:
        counters.last_snapshot_pass = pass_index
    return export


def write_exported_rows(arrays: RowArrays, slots: np.ndarray, rows: dict[str, np.ndarray]) -> None:
    """Write exported rows (``ROW_FIELDS``, plus ``score``/``last_seen`` when present, else last-seen =
    creation) into ``arrays`` at ``slots``, flagged as changed."""
    columns = arrays.as_dict()
    for name in ROW_FIELDS:
        columns[name][slots] = rows[name]
    arrays.last_seen[slots] = rows.get("last_seen", rows["created"])
    if "score" in rows:
        arrays.score[slots] = rows["score"]
    arrays.flags[slots] |= CHANGED


def apply_export_chains(
    model_dirs: list[Path], up_to_pass: int | None, table_class: type[Table], config: TableConfig | None = None
) -> Table:
    """A new table holding exactly the exported rows of every directory in ``model_dirs`` (one, or
    the shards of one table): in each, the newest snapshot (of passes <= ``up_to_pass`` when given),
    then its deltas in order, deletions before upserts; the directories are read one at a time.
    ``config`` (same ``dim``) replaces the exported settings."""
    if not model_dirs:
        raise ValueError("model_dirs must name at least one export directory")
    table: Table | None = None
    for model_dir in model_dirs:
        chain = read_export_chain(model_dir, up_to_pass)
        if table is None:
            header = chain[0].meta
            exported = table_config_from_dict(header["config"])
            if config is not None and config.dim != exported.dim:
                raise ValueError(f"dim must be the exported rows' width {exported.dim}, got {config.dim}")
            if config is None and len(model_dirs) > 1:  # room for every shard's rows (budgets differ by <= 1 byte)
                exported = dataclasses.replace(exported, budget_bytes=(exported.budget_bytes + 1) * len(model_dirs))
            table = table_class(config or exported, seed=int(header["seed"]))
        for export_file in chain:
            table.delete_keys(export_file.arrays[DELETED_FIELD])
            table.upsert_rows({name: export_file.arrays[name] for name in ROW_FIELDS})
    assert table is not None
    table.rows.flags.fill(0)
    return table
