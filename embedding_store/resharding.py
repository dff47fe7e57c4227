"""A table's rows moved to another number of shards (a trainer restarted with another world size).

``reshard`` builds shard r of N from the shards of any earlier layout (one table, or M shards),
read one at a time: it keeps the live rows whose key it owns with everything that makes a row
(weights, AdaGrad state, update count, creation and last-seen ticks, score). Cumulative counters
(evictions, admissions, rejections, lookups, updates) are summed into shard 0 so that totals
carry on. Two things do not carry over: the admission filter's counts of keys that have no row
yet (a sketch cannot be split by key; such keys start counting again) and the export chain (the
next export of the new shard is a snapshot into its own directory). A new shard that cannot hold
every row it owns (a smaller share of the budget) keeps the highest scores and counts the rest as
budget evictions.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from embedding_store.config import TableConfig
from embedding_store.eviction import EvictionReason
from embedding_store.sharding import shard_config, shard_of
from embedding_store.table import EmbeddingTable
from embedding_store.table_state import TOUCHED, TableCounters


def reshard(sources: Iterable[EmbeddingTable], config: TableConfig, shard: int, shards: int) -> EmbeddingTable:
    """Shard ``shard`` of ``shards`` of the table whose shards are ``sources`` (see the module docstring);
    ``config`` is the whole table's configuration (this shard gets its share)."""
    pieces: list[dict[str, np.ndarray]] = []
    totals = TableCounters(free_count=0)
    seed: int | None = None
    for source in sources:
        rows = source.live_rows()
        owned = shard_of(rows["keys"], shards) == shard
        pieces.append({name: values[owned] for name, values in rows.items()})
        seed = source.seed if seed is None else seed
        _add_counters(totals, source.counters)
    if seed is None:
        raise ValueError("sources must hold at least one table")
    table = EmbeddingTable(shard_config(config, shard, shards), seed)
    rows = {name: np.concatenate([piece[name] for piece in pieces]) for name in pieces[0]}
    order = np.argsort(rows["keys"], kind="stable")
    if order.shape[0] > table.capacity:
        by_score = np.argsort(-rows["score"][order], kind="stable")[: table.capacity]
        totals.evictions[EvictionReason.BUDGET.value] += order.shape[0] - table.capacity
        order = np.sort(order[by_score])
    table.upsert_rows({name: values[order] for name, values in rows.items()})
    table.rows.flags &= ~TOUCHED  # rows are restored between passes: none is looked up yet
    counters = table.counters
    counters.passes_ended = totals.passes_ended
    counters.tag_names.update(totals.tag_names)
    for name in ("admissions", "lookups", "updated_rows"):
        setattr(counters, name, getattr(totals, name) if shard == 0 else 0)
    counters.evictions = dict(totals.evictions) if shard == 0 else dict.fromkeys(totals.evictions, 0)
    counters.rejections = dict(totals.rejections) if shard == 0 else dict.fromkeys(totals.rejections, 0)
    return table


def _add_counters(total: TableCounters, part: TableCounters) -> None:
    total.passes_ended = max(total.passes_ended, part.passes_ended)
    total.tag_names.update(part.tag_names)
    total.admissions += part.admissions
    total.lookups += part.lookups
    total.updated_rows += part.updated_rows
    for name, value in part.evictions.items():
        total.evictions[name] = total.evictions.get(name, 0) + value
    for name, value in part.rejections.items():
        total.rejections[name] = total.rejections.get(name, 0) + value
