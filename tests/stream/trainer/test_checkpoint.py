import logging

import pytest

from stream.trainer.checkpoint import CheckpointStore


def write_state(value: str):
    def write(directory):
        (directory / "state.json").write_text(value)
        (directory / "table").mkdir()
        (directory / "table" / "rows.npy").write_bytes(value.encode() * 100)

    return write


def test_save_verify_and_keep_last_k(tmp_path):
    store = CheckpointStore(tmp_path, keep=2)
    for i in range(4):
        store.save(i, write_state(f"s{i}"))
    assert [p for p, _ in store.list()] == [2, 3]
    index, path = store.latest_valid()
    assert index == 3 and (path / "state.json").read_text() == "s3"
    assert store.verify(path) is None


def test_corrupt_newest_falls_back_with_one_warning(tmp_path, caplog):
    store = CheckpointStore(tmp_path, keep=3)
    for i in range(3):
        store.save(i, write_state(f"s{i}"))
    newest = store.path_of(2) / "table" / "rows.npy"
    data = bytearray(newest.read_bytes())
    data[10] ^= 0xFF
    newest.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING):
        index, _ = store.latest_valid()
    assert index == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "table/rows.npy fails its checksum" in warnings[0].getMessage()
    assert "\n" not in warnings[0].getMessage()


@pytest.mark.parametrize("damage", ["truncate_checksums", "delete_file", "extra_file"])
def test_partial_checkpoints_are_rejected(tmp_path, damage):
    store = CheckpointStore(tmp_path, keep=3)
    store.save(0, write_state("a"))
    path = store.save(1, write_state("b"))
    if damage == "truncate_checksums":
        (path / "CHECKSUMS.json").write_text('{"format": 1, "fi')
    elif damage == "delete_file":
        (path / "state.json").unlink()
    else:
        (path / "stray.bin").write_bytes(b"x")
    assert store.verify(path) is not None
    assert store.latest_valid()[0] == 0


def test_crash_before_rename_leaves_no_checkpoint(tmp_path):
    store = CheckpointStore(tmp_path, keep=3)
    store.save(0, write_state("a"))

    def crash(directory):
        (directory / "state.json").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.save(1, crash)
    assert store.latest_valid()[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000000000"]


def test_a_temporary_left_by_a_killed_writer_is_removed_by_the_next_save(tmp_path):
    store = CheckpointStore(tmp_path, keep=3)
    stale = tmp_path / ".ckpt-000000001.killed.tmp"
    stale.mkdir()
    (stale / "state.json").write_text("half")
    store.save(1, write_state("b"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000000001"]


def test_resave_replaces_a_damaged_checkpoint_of_the_same_pass(tmp_path):
    store = CheckpointStore(tmp_path, keep=3)
    path = store.save(0, write_state("a"))
    (path / "state.json").write_text("garbage")
    store.save(0, write_state("fixed"))
    assert store.verify(path) is None and (path / "state.json").read_text() == "fixed"


def test_store_rejects_bad_keep(tmp_path):
    with pytest.raises(ValueError, match="keep"):
        CheckpointStore(tmp_path, keep=0)
