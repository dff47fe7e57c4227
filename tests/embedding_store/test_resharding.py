"""Re-sharding a table (1 -> 2 -> 1 shards) keeps every row and the cumulative counters; shard
exports read back as one table."""

import numpy as np

from embedding_store import EmbeddingTable, feature_keys
from embedding_store.resharding import reshard
from embedding_store.sharding import shard_dir_name, shard_of
from tests.embedding_store.table_fixtures import small_config


def trained_table(config, seed: int = 5) -> EmbeddingTable:
    table = EmbeddingTable(config, seed=seed)
    rng = np.random.default_rng(seed)
    for pass_index in range(3):
        for _ in range(4):
            slots = table.lookup(feature_keys("item_id", rng.integers(0, 150, size=80)), 100 * pass_index + 7)
            table.record_feedback(slots, rng.integers(0, 2, size=slots.size))
            table.apply_gradients(slots, rng.standard_normal((slots.size, table.dim)).astype(np.float32))
        table.end_pass(pass_index, 100 * pass_index + 50)
    return table


def test_two_shards_and_back_hold_the_same_rows_and_counters():
    config = small_config(budget_bytes=64 * 1024, feature_limits={"item_id": 1000})
    original = trained_table(config)
    halves = [reshard([original], config, shard, 2) for shard in range(2)]
    for shard, half in enumerate(halves):
        assert (shard_of(half.live_rows()["keys"], 2) == shard).all()
        assert half.config.budget_bytes == config.budget_bytes // 2
        assert half.stats().rows > 0
    assert sum(h.stats().rows for h in halves) == original.stats().rows
    assert halves[0].stats().admissions == original.stats().admissions and halves[1].stats().admissions == 0
    back = reshard(iter(halves), config, 0, 1)
    expected, actual = original.live_rows(), back.live_rows()
    for name, values in expected.items():
        np.testing.assert_array_equal(actual[name], values, err_msg=name)
    before, after = original.stats(), back.stats()
    assert (after.evictions, after.admissions, after.lookups, after.updated_rows) == (
        before.evictions, before.admissions, before.lookups, before.updated_rows,
    )  # fmt: skip
    assert after.rows_per_feature == before.rows_per_feature
    # The re-sharded table trains on (no row is marked as looked up this pass).
    slots = back.lookup(feature_keys("item_id", np.arange(5)), 400)
    back.apply_gradients(slots, np.ones((5, back.dim), dtype=np.float32))
    back.end_pass(3, 450)


def test_a_smaller_shard_keeps_the_highest_scores():
    big = small_config(budget_bytes=64 * 1024)
    original = trained_table(big)
    small = small_config(budget_bytes=8 * 1024)
    shrunk = reshard([original], small, 0, 1)
    kept = shrunk.live_rows()
    assert shrunk.stats().rows == shrunk.capacity < original.stats().rows
    rows = original.live_rows()
    threshold = np.sort(rows["score"])[::-1][shrunk.capacity - 1]
    assert kept["score"].min() >= threshold
    dropped = rows["keys"].size - shrunk.capacity
    assert shrunk.stats().evictions["budget"] == original.stats().evictions["budget"] + dropped


def test_shard_exports_load_as_one_table(tmp_path):
    config = small_config(budget_bytes=64 * 1024)
    original = trained_table(config)
    dirs = []
    for shard in range(3):
        part = reshard([original], config, shard, 3)
        dirs.append(tmp_path / shard_dir_name(shard, 3))
        part.export(dirs[-1], 2)
    loaded = EmbeddingTable.load_export(dirs)
    expected, actual = original.live_rows(), loaded.live_rows()
    for name in ("keys", "weights", "accumulator", "updates", "created"):
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)
