import numpy as np
import pytest

from embedding_store import EmbeddingTable, feature_keys
from embedding_store.table_files import table_state
from tests.embedding_store.table_fixtures import small_config, train_pass


def assert_same_state(a: EmbeddingTable, b: EmbeddingTable) -> None:
    (arrays_a, meta_a), (arrays_b, meta_b) = table_state(a), table_state(b)
    assert arrays_a.keys() == arrays_b.keys()
    for name, values in arrays_a.items():
        assert values.tobytes() == arrays_b[name].tobytes(), name
    assert meta_a == meta_b


POLICIES = {
    "budget_and_filter": dict(admission_min_count=2, admission_probability=0.7, snapshot_every_passes=3),
    "expiry_and_limits": dict(ttl_ms=300, min_updates=1, min_updates_grace_ms=100, feature_limits={"item_id": 150}),
    "element_wise": dict(row_wise_adagrad=False, index_load_factor=0.3, deletion_log_fraction=0.05),
}


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_base_plus_increments_restore_the_table_bit_for_bit(tmp_path, policy):
    table = EmbeddingTable(small_config(**POLICIES[policy]), seed=5)
    rng = np.random.default_rng(11)
    files = []
    kinds = []
    for pass_index in range(14):
        train_pass(table, rng, pass_index, tmp_path / "model", keys=300, drift=40)
        checkpoint = table.capture_checkpoint(pass_index, base=pass_index % 6 == 0)
        path = tmp_path / f"ckpt-{pass_index}.npz"
        checkpoint.write(path)
        kinds.append(checkpoint.kind)
        files = [path] if checkpoint.kind == "base" else [*files, path]
        restored = EmbeddingTable.load_checkpoint_chain(files)
        assert_same_state(table, restored)
    assert kinds.count("base") == 3 and kinds.count("increment") == 11
    assert table.stats().evictions["budget"] + table.stats().evictions["ttl"] > 0
    # The restored table goes on exactly like the original (change tracking included).
    for pass_index in range(14, 17):
        for t in (table, restored):
            train_pass(t, np.random.default_rng(pass_index), pass_index, tmp_path / f"m{id(t)}")
        a = table.capture_checkpoint(pass_index, base=False)
        b = restored.capture_checkpoint(pass_index, base=False)
        assert a.arrays.keys() == b.arrays.keys()
        assert all(a.arrays[k].tobytes() == b.arrays[k].tobytes() for k in a.arrays)


def test_increment_carries_only_what_changed(tmp_path):
    table = EmbeddingTable(small_config(budget_bytes=4 * 1024 * 1024), seed=1)
    rng = np.random.default_rng(0)
    train_pass(table, rng, 0, tmp_path / "model")
    base = table.capture_checkpoint(0, base=True)
    assert base.kind == "base" and base.rows == table.counters.rows_high_water == len(table)
    assert base.nbytes < table.layout.allocated_bytes / 10  # rows ever allocated, not the capacity
    slots = table.lookup(feature_keys("item_id", np.arange(1, 6)), 500)
    table.apply_gradients(slots, np.ones((5, table.dim), dtype=np.float32))
    increment = table.capture_checkpoint(1, base=False)
    assert increment.kind == "increment" and increment.previous_pass == 0
    assert increment.rows == len(np.unique(slots))
    nothing = table.capture_checkpoint(2, base=False)
    assert nothing.rows == 0 and nothing.arrays["index_buckets.values"].shape == (0,)
    with pytest.raises(ValueError, match="must exceed the last checkpoint's 2"):
        table.capture_checkpoint(2, base=False)


def test_a_chain_is_checked_link_by_link(tmp_path):
    table = EmbeddingTable(small_config(), seed=1)
    rng = np.random.default_rng(0)
    paths = []
    for pass_index in range(3):
        train_pass(table, rng, pass_index, tmp_path / "model")
        paths.append(tmp_path / f"{pass_index}.npz")
        table.capture_checkpoint(pass_index, base=False).write(paths[-1])
    with pytest.raises(ValueError, match="starts with a base"):
        EmbeddingTable.load_checkpoint_chain(paths[1:])
    with pytest.raises(ValueError, match="chain is broken"):
        EmbeddingTable.load_checkpoint_chain([paths[0], paths[2]])
    data = bytearray(paths[1].read_bytes())
    data[len(data) // 2] ^= 0x01
    paths[1].write_bytes(bytes(data))
    with pytest.raises(ValueError, match="1.npz"):
        EmbeddingTable.load_checkpoint_chain(paths)
