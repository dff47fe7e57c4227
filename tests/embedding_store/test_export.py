import os
import stat

import numpy as np
import pytest

from embedding_store import EmbeddingTable, feature_keys
from embedding_store.export import read_export_chain
from embedding_store.npz_file import write_npz_atomic
from tests.embedding_store.table_fixtures import small_config


def assert_same_rows(live: EmbeddingTable, loaded: EmbeddingTable) -> None:
    """Bit-for-bit equality of every exported field, row by row (keyed, slot-independent)."""
    a, b = live.live_rows(), loaded.live_rows()
    for name in ("keys", "weights", "accumulator", "updates", "created"):
        assert a[name].dtype == b[name].dtype and a[name].shape == b[name].shape, name
        assert a[name].tobytes() == b[name].tobytes(), name


def _train_one_pass(table: EmbeddingTable, rng: np.random.Generator, pass_index: int) -> None:
    t = 1000 * (pass_index + 1)
    for _ in range(4):
        values = rng.zipf(1.3, size=256) + pass_index * 40  # new ids arrive every pass
        keys = feature_keys("item_id", values)
        slots = table.lookup(keys, t)
        table.record_feedback(slots, rng.integers(0, 2, size=slots.size))
        table.apply_gradients(slots, rng.standard_normal((slots.size, table.dim)).astype(np.float32))
    table.end_pass(pass_index, t + 999)


def test_snapshot_plus_twenty_deltas_equals_the_live_table(tmp_path):
    config = small_config(budget_bytes=48 * 1024, ttl_ms=4000, snapshot_every_passes=100, deletion_log_fraction=1.0)
    table = EmbeddingTable(config, seed=5)
    rng = np.random.default_rng(0)
    kinds = []
    for pass_index in range(21):
        _train_one_pass(table, rng, pass_index)
        kinds.append(table.export(tmp_path, pass_index).kind)
        if pass_index in (0, 7, 20):
            assert_same_rows(table, EmbeddingTable.load_export(tmp_path))
    assert kinds == ["snapshot"] + ["delta"] * 20
    stats = table.stats()
    assert stats.evictions["budget"] > 0 and stats.evictions["ttl"] > 0  # deletions crossed the deltas
    chain = read_export_chain(tmp_path)
    assert len(chain) == 21 and sum(f.arrays["deleted_keys"].size for f in chain) > 0
    # The loaded table scores like the live one.
    probe = feature_keys("item_id", np.arange(1, 2000))
    loaded = EmbeddingTable.load_export(tmp_path)
    live_rows = table.gather(table.lookup(probe, 0, train=False))
    loaded_rows = loaded.gather(loaded.lookup(probe, 0, train=False))
    assert live_rows.tobytes() == loaded_rows.tobytes()


def test_load_up_to_a_pass(tmp_path):
    table = EmbeddingTable(small_config(snapshot_every_passes=3, keep_snapshots=5))
    rng = np.random.default_rng(2)
    rows_after = []
    for pass_index in range(5):
        _train_one_pass(table, rng, pass_index)
        table.export(tmp_path, pass_index)
        rows_after.append(table.live_rows())
    for pass_index in (1, 2, 3):
        loaded = EmbeddingTable.load_export(tmp_path, up_to_pass=pass_index).live_rows()
        assert loaded["weights"].tobytes() == rows_after[pass_index]["weights"].tobytes()
        assert loaded["keys"].tobytes() == rows_after[pass_index]["keys"].tobytes()
    with pytest.raises(ValueError, match="no snapshot-\\*.npz export up to pass -1"):
        EmbeddingTable.load_export(tmp_path, up_to_pass=-1)


def test_load_export_with_another_config_keeps_the_rows_and_takes_the_settings(tmp_path):
    table = EmbeddingTable(small_config(), seed=3)
    _train_one_pass(table, np.random.default_rng(4), 0)
    table.export(tmp_path, 0)
    bigger = small_config(budget_bytes=64 * 1024, learning_rate=0.01)
    loaded = EmbeddingTable.load_export(tmp_path, config=bigger)
    assert_same_rows(table, loaded)
    assert loaded.config == bigger and loaded.capacity > table.capacity
    with pytest.raises(ValueError, match="^dim must be the exported rows' width 4, got 8"):
        EmbeddingTable.load_export(tmp_path, config=small_config(dim=8))
    with pytest.raises(ValueError, match="too few for the"):
        EmbeddingTable.load_export(tmp_path, config=small_config(budget_bytes=4 * 1024))


def test_snapshot_every_k_passes_and_pruning(tmp_path):
    table = EmbeddingTable(small_config(snapshot_every_passes=3, keep_snapshots=2, deletion_log_fraction=1.0))
    rng = np.random.default_rng(1)
    kinds = []
    for pass_index in range(10):
        _train_one_pass(table, rng, pass_index)
        kinds.append(table.export(tmp_path, pass_index).kind)
    assert kinds == ["snapshot", "delta", "delta"] * 3 + ["snapshot"]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == [  # snapshots 6 and 9 are kept, with the deltas after the older one
        "delta-000000007.npz",
        "delta-000000008.npz",
        "snapshot-000000006.npz",
        "snapshot-000000009.npz",
    ]
    assert_same_rows(table, EmbeddingTable.load_export(tmp_path))


def test_deletion_log_overflow_forces_a_snapshot(tmp_path):
    table = EmbeddingTable(small_config(deletion_log_fraction=0.01, ttl_ms=10))
    table.lookup(feature_keys("item_id", np.arange(1, 101)), 1)
    table.export(tmp_path, 0)
    table.end_pass(0, 1000)  # 100 TTL deletions, the log holds only a few
    assert table.export(tmp_path, 1).kind == "snapshot"
    assert len(EmbeddingTable.load_export(tmp_path)) == 0


def test_corrupt_file_is_detected(tmp_path):
    table = EmbeddingTable(small_config())
    table.lookup(feature_keys("item_id", np.arange(1, 50)), 1)
    record = table.export(tmp_path, 0)
    data = bytearray(record.path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    record.path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="snapshot-000000000.npz"):
        EmbeddingTable.load_export(tmp_path)


def test_broken_delta_chain_and_bad_pass_order_are_refused(tmp_path):
    table = EmbeddingTable(small_config())
    table.lookup(feature_keys("item_id", np.arange(1, 50)), 1)
    table.export(tmp_path, 0)
    table.export(tmp_path, 1)
    second = table.export(tmp_path, 2)
    with pytest.raises(ValueError, match="pass_index must exceed"):
        table.export(tmp_path, 2)
    (tmp_path / "delta-000000001.npz").unlink()
    with pytest.raises(ValueError, match="chain is broken"):
        EmbeddingTable.load_export(tmp_path)
    assert second.path.exists()


def test_missing_export_directory(tmp_path):
    with pytest.raises(ValueError, match="holds no snapshot"):
        EmbeddingTable.load_export(tmp_path)
    with pytest.raises(ValueError, match="is not a directory"):
        EmbeddingTable.load_export(tmp_path / "nope")


def test_no_temporary_files_are_left(tmp_path):
    table = EmbeddingTable(small_config())
    table.lookup(feature_keys("item_id", np.arange(1, 50)), 1)
    table.export(tmp_path, 0)
    assert [p.name for p in tmp_path.iterdir()] == ["snapshot-000000000.npz"]


def test_export_files_are_readable_by_other_users_under_a_normal_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        write_npz_atomic(tmp_path / "snapshot.npz", {"rows": np.arange(3)}, {"kind": "test"})
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "snapshot.npz").stat().st_mode) == 0o644
