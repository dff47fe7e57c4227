import numpy as np
import pytest

from embedding_store import EmbeddingTable
from tests.embedding_store.table_fixtures import small_config, train_pass


def _run(table: EmbeddingTable, rng: np.random.Generator, passes: range, model_dir) -> list:
    return [train_pass(table, rng, pass_index, model_dir) for pass_index in passes]


def test_restarted_table_continues_bit_for_bit(tmp_path):
    config = small_config(
        admission_min_count=2,
        admission_probability=0.7,
        ttl_ms=300,
        min_updates=1,
        min_updates_grace_ms=100,
        feature_limits={"item_id": 200},
        snapshot_every_passes=4,
    )
    original = EmbeddingTable(config, seed=9)
    _run(original, np.random.default_rng(3), range(5), tmp_path / "a")
    original.save_state(tmp_path / "state.npz")
    restored = EmbeddingTable.load_state(tmp_path / "state.npz")
    # Both continue on the same stream; the restored one exports to the same place.
    (tmp_path / "b").mkdir()
    for path in (tmp_path / "a").iterdir():
        (tmp_path / "b" / path.name).write_bytes(path.read_bytes())
    original_reports = _run(original, np.random.default_rng(4), range(5, 12), tmp_path / "a")
    restored.counters.export_dir = str((tmp_path / "b").resolve())  # same history, other folder
    restored_reports = _run(restored, np.random.default_rng(4), range(5, 12), tmp_path / "b")
    for a, b in zip(original_reports, restored_reports, strict=True):
        assert (a.rows_after, a.evictions) == (b.rows_after, b.evictions)
    rows_a, rows_b = original.live_rows(), restored.live_rows()
    for name, values in rows_a.items():
        assert values.tobytes() == rows_b[name].tobytes(), name
    stats_a, stats_b = original.stats(), restored.stats()
    assert stats_a == stats_b
    assert stats_a.rejections["count"] > 0 and stats_a.rejections["probability"] > 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(p.name for p in (tmp_path / "b").iterdir())
    a_rows = EmbeddingTable.load_export(tmp_path / "a").live_rows()
    b_rows = EmbeddingTable.load_export(tmp_path / "b").live_rows()
    assert all(a_rows[name].tobytes() == b_rows[name].tobytes() for name in a_rows)


def test_state_file_checks(tmp_path):
    table = EmbeddingTable(small_config())
    table.save_state(tmp_path / "state.npz")
    data = bytearray((tmp_path / "state.npz").read_bytes())
    data[len(data) // 2] ^= 0x01
    (tmp_path / "bad.npz").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="bad.npz"):
        EmbeddingTable.load_state(tmp_path / "bad.npz")
    np.savez(tmp_path / "plain.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="missing __meta__"):
        EmbeddingTable.load_state(tmp_path / "plain.npz")
