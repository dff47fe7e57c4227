"""A table sharded over two real processes (gloo on loopback) behaves as one table.

Each rank looks up, reads and trains its own keys; a single ``EmbeddingTable`` fed with both
ranks' calls (concatenated per step) is the reference: the rows each rank reads, and the union of
the shards' rows at the end, equal the reference's bit for bit (scores, whose additions happen in
another order, to float precision).
"""

from __future__ import annotations

import numpy as np
import pytest

from embedding_store.config import TableConfig
from embedding_store.shard_exchange import ShardExchange
from embedding_store.sharded_table import ShardedEmbeddingTable
from embedding_store.sharding import shard_config, shard_of, split_evenly
from embedding_store.table import EmbeddingTable
from tests.process_group import run_in_ranks

DIM = 4
CONFIG = TableConfig(dim=DIM, budget_bytes=1 << 20)
STEPS = 4


def step_inputs(rank: int, step: int) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
    """Rank ``rank``'s distinct keys at ``step`` (some shared with the other rank), time, grads, labels."""
    rng = np.random.default_rng(100 * step + rank)
    keys = np.unique(rng.integers(1, 400, size=120).astype(np.uint64))
    grads = rng.normal(size=(keys.shape[0], DIM)).astype(np.float32)
    positives = (rng.random(keys.shape[0]) < 0.3).astype(np.float32)
    return keys, 1_000_000 + 1000 * step + rank, grads, positives


def train_on_shards(rank: int, world_size: int) -> dict:
    table = ShardedEmbeddingTable.create(CONFIG, ShardExchange())
    read = []
    for step in range(STEPS):
        keys, time_ms, grads, positives = step_inputs(rank, step)
        handles = table.lookup(keys, time_ms)
        read.append(table.gather(handles))
        table.apply_gradients(handles, grads)
        table.record_feedback(handles, positives)
    fetched = table.gather(handles)  # not right after a lookup: fetched from the owners, after the update
    unknown = table.lookup(np.array([0, 987654321], dtype=np.uint64), 0, train=False)
    try:
        table.gather(np.array([0], dtype=np.int64))  # a handle of an older lookup, right after a lookup
        stale_error = None
    except ValueError as error:
        stale_error = str(error)
    report = table.end_pass(0, 2_000_000)
    return {
        "read": read,
        "fetched": fetched,
        "unknown": unknown,
        "stale_error": stale_error,
        "rows": table.local.live_rows(),
        "report": report,
        "stats": table.stats(),
        "shard_rows": [s.rows for s in table.last_shard_stats],
    }


def test_two_shards_train_like_one_table():
    ranks = run_in_ranks(train_on_shards, 2)
    reference = EmbeddingTable(CONFIG)
    for step in range(STEPS):
        inputs = [step_inputs(rank, step) for rank in range(2)]
        keys = np.concatenate([k for k, _, _, _ in inputs])
        times = np.concatenate([np.full(k.shape[0], t) for k, t, _, _ in inputs])
        slots = reference.lookup(keys, times)
        rows = reference.gather(slots)
        split = inputs[0][0].shape[0]
        np.testing.assert_array_equal(ranks[0]["read"][step], rows[:split])
        np.testing.assert_array_equal(ranks[1]["read"][step], rows[split:])
        reference.apply_gradients(slots, np.concatenate([g for _, _, g, _ in inputs]))
        reference.record_feedback(slots, np.concatenate([p for _, _, _, p in inputs]))
    last_keys = step_inputs(1, STEPS - 1)[0]
    np.testing.assert_array_equal(ranks[1]["fetched"], reference.gather(reference.lookup(last_keys, 0, train=False)))
    assert (ranks[0]["unknown"] == -1).all()
    assert "right after a lookup" in ranks[0]["stale_error"]

    report = reference.end_pass(0, 2_000_000)
    expected = reference.live_rows()
    shards = [r["rows"] for r in ranks]
    assert all((shard_of(s["keys"], 2) == rank).all() for rank, s in enumerate(shards))
    order = np.argsort(np.concatenate([s["keys"] for s in shards]))
    for name, values in expected.items():
        merged = np.concatenate([s[name] for s in shards])[order]
        if name == "score":
            np.testing.assert_allclose(merged, values, rtol=1e-6)
        else:
            np.testing.assert_array_equal(merged, values, err_msg=name)
    assert ranks[0]["report"].rows_after == ranks[1]["report"].rows_after == report.rows_after
    total = ranks[0]["stats"]
    assert total.rows == expected["keys"].shape[0] == sum(ranks[1]["shard_rows"])
    assert total.budget_bytes == CONFIG.budget_bytes
    assert total.updated_rows == reference.stats().updated_rows


def test_keys_spread_evenly_and_the_budget_splits_exactly():
    keys = np.arange(1, 200_001, dtype=np.uint64) * np.uint64(0x9E3779B1)
    counts = np.bincount(shard_of(keys, 3), minlength=3)
    assert counts.min() > 0.98 * keys.shape[0] / 3
    config = TableConfig(budget_bytes=10_000_001, feature_limits={"user_id": 7})
    parts = [shard_config(config, shard, 3) for shard in range(3)]
    assert sum(p.budget_bytes for p in parts) == config.budget_bytes
    assert [p.feature_limits["user_id"] for p in parts] == [3, 2, 2]
    assert sum(split_evenly(10, s, 4) for s in range(4)) == 10
    with pytest.raises(ValueError, match="shard must be in"):
        shard_config(config, 3, 3)
