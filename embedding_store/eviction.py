"""Which rows go at a pass end: expiry, minimum updates, and the lowest scores (no full sort)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

from embedding_store.keys import key_tags

if TYPE_CHECKING:
    from embedding_store.config import TableConfig
    from embedding_store.layout import TableLayout
    from embedding_store.table_state import RowArrays

_SAMPLE_SIZE = 1 << 16  # scores sampled to bracket the eviction threshold
_SAMPLE_MARGIN = 0.02  # extra quantile taken above the target so the bracket nearly always holds


class EvictionReason(StrEnum):
    """Why a row was deleted (keys of the eviction counters)."""

    BUDGET = "budget"
    FEATURE_LIMIT = "feature_limit"
    TTL = "ttl"
    MIN_UPDATES = "min_updates"


def lowest_score_rows(score: np.ndarray, count: int, candidates: np.ndarray | None = None) -> np.ndarray:
    """Indices (ascending) of the ``count`` lowest finite scores among ``candidates`` (default: all).

    Instead of sorting every row, a strided sample brackets the threshold, one vectorised
    comparison collects the rows under it, and ``argpartition`` picks exactly ``count`` of those.
    Ties at the threshold are broken by ``argpartition`` deterministically (same input, same rows).
    """
    pool = score if candidates is None else score[candidates]
    if count <= 0:
        return np.empty(0, dtype=np.int64)
    n = pool.shape[0]
    if count >= n:
        chosen = np.arange(n)
    else:
        step = max(1, n // _SAMPLE_SIZE)
        sample = pool[::step]
        rank = min(sample.shape[0] - 1, int(np.ceil((count / n + _SAMPLE_MARGIN) * sample.shape[0])))
        threshold = np.partition(sample, rank)[rank]
        under = np.flatnonzero(pool <= threshold)
        if under.shape[0] < count:  # the sample under-estimated the threshold: select among all rows
            under = np.arange(n)
        chosen = under[np.argpartition(pool[under], count - 1)[:count]]
        chosen.sort()
    return chosen if candidates is None else candidates[chosen]


def ttl_expired(last_seen: np.ndarray, live: np.ndarray, now_tick: int, ttl_ticks: int) -> np.ndarray:
    """Live rows whose last sighting is more than ``ttl_ticks`` before ``now_tick``."""
    cutoff = now_tick - ttl_ticks
    if cutoff <= 0:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero((last_seen < cutoff) & live)


def under_updated(
    created: np.ndarray,
    updates: np.ndarray,
    live: np.ndarray,
    now_tick: int,
    grace_ticks: int,
    min_updates: int,
) -> np.ndarray:
    """Live rows older than ``grace_ticks`` that got fewer than ``min_updates`` gradient updates."""
    cutoff = now_tick - grace_ticks
    if cutoff < 0:
        return np.empty(0, dtype=np.int64)
    return np.flatnonzero((updates < min_updates) & (created <= cutoff) & live)


def pass_end_victims(
    rows: RowArrays,
    live: np.ndarray,
    now_tick: int,
    config: TableConfig,
    layout: TableLayout,
    rows_per_tag: dict[int, int],
    limits_by_tag: dict[int, int],
    row_count: Callable[[], int],
) -> Iterator[tuple[EvictionReason, np.ndarray]]:
    """The rows to delete at a pass end, reason by reason: TTL (unseen for ``ttl_ms``), min-updates
    (older than the grace age with fewer than ``min_updates`` updates), per-feature limits (lowest
    scores of that feature), byte budget (above the high watermark: lowest scores down to the low
    watermark). The caller deletes each batch (clearing ``live``, updating ``rows_per_tag`` and
    ``row_count()``) before asking for the next, which is computed from what is left."""
    resolution = config.time_resolution_ms
    if config.ttl_ms:
        yield EvictionReason.TTL, ttl_expired(rows.last_seen, live, now_tick, config.ttl_ms // resolution)
    if config.min_updates:
        grace = config.min_updates_grace_ms // resolution
        yield EvictionReason.MIN_UPDATES, under_updated(rows.created, rows.updates, live, now_tick, grace,
                                                        config.min_updates)  # fmt: skip
    over_limit = {
        tag: rows_per_tag.get(tag, 0) - limit
        for tag, limit in limits_by_tag.items()
        if rows_per_tag.get(tag, 0) > limit
    }
    if over_limit:
        row_tags = key_tags(rows.keys[: layout.capacity])
        for tag, excess in over_limit.items():
            candidates = np.flatnonzero((row_tags == tag) & live)
            yield EvictionReason.FEATURE_LIMIT, lowest_score_rows(rows.score, excess, candidates)
    budget = config.budget_bytes
    if layout.used_bytes(row_count()) > config.high_watermark * budget:
        target_rows = layout.rows_within(config.low_watermark * budget)
        yield EvictionReason.BUDGET, lowest_score_rows(rows.score, row_count() - target_rows)
