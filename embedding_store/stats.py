"""Typed statistics of a table (for monitoring) and the report of one pass end."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class TableStats:
    """A table's state. Bytes are accounted: fixed arrays plus live rows; cumulative counters."""

    budget_bytes: int
    bytes_used: int  # fixed arrays + live rows (what the watermarks compare with the budget)
    bytes_allocated: int  # every preallocated array at full capacity (<= budget_bytes)
    bytes_by_component: dict[str, int]  # weights, optimizer, metadata, index, admission_filter, deletion_log
    capacity_rows: int
    rows: int
    rows_per_feature: dict[str, int]  # unregistered features appear as "tag:0x1234"
    evictions: dict[str, int]  # cumulative, by EvictionReason value
    admissions: int  # rows created
    rejections: dict[str, int]  # cumulative unique-key rejections per batch: count, probability, full
    lookups: int  # keys looked up (train and eval)
    updated_rows: int  # unique rows updated by apply_gradients, cumulative
    index_tombstones: int

    @staticmethod
    def total(parts: list[TableStats]) -> TableStats:
        """The statistics of a table made of the shards ``parts`` (every figure summed)."""
        return _combined(parts)

    @staticmethod
    def from_json(values: dict[str, Any]) -> TableStats:
        """The statistics ``dataclasses.asdict`` wrote as JSON."""
        return TableStats(**values)


@dataclass
class PassEndReport:
    """What ``end_pass`` did: rows deleted by reason, rows and bytes after, time taken."""

    pass_index: int
    event_time_ms: int
    rows_before: int
    rows_after: int
    bytes_used: int
    budget_bytes: int
    evictions: dict[str, int] = field(default_factory=dict)  # this pass, by reason
    index_rebuilt: bool = False
    duration_s: float = 0.0

    @staticmethod
    def total(parts: list[PassEndReport]) -> PassEndReport:
        """The report of a table made of the shards ``parts``: sums, the slowest shard's time."""
        return _combined(parts, same=("pass_index", "event_time_ms"))


def _summed(maps: list[dict[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for values in maps:
        for name, value in values.items():
            total[name] = total.get(name, 0) + value
    return total


def _combined(parts: list[Any], same: tuple[str, ...] = ()) -> Any:
    """One dataclass of ``parts``' type: fields in ``same`` from the first part, maps and numbers
    summed, flags or-ed, seconds (floats) the largest."""
    values: dict[str, Any] = {}
    for f in dataclasses.fields(parts[0]):
        column = [getattr(p, f.name) for p in parts]
        if f.name in same:
            values[f.name] = column[0]
        elif isinstance(column[0], dict):
            values[f.name] = dict(sorted(_summed(column).items()))
        elif isinstance(column[0], bool):
            values[f.name] = any(column)
        elif isinstance(column[0], float):
            values[f.name] = max(column)
        else:
            values[f.name] = sum(column)
    return type(parts[0])(**values)
