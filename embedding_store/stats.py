"""Typed statistics of a table (for monitoring) and the report of one pass end."""

from __future__ import annotations

from dataclasses import dataclass, field


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
