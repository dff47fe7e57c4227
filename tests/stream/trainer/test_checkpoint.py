import logging
import shutil

import pytest

from stream.trainer.checkpoint import CheckpointStore


def write_state(value: str):
    def write(directory):
        (directory / "state.json").write_text(value)
        (directory / "table").mkdir()
        (directory / "table" / "rows.npy").write_bytes(value.encode() * 100)

    return write


def save_chain(store, passes, base_every):
    """Save checkpoints of ``passes`` as the trainer does: a base every ``base_every``, pruned before it."""
    for i in passes:
        if i % base_every == 0:
            store.prune_before_base()
        store.save(i, write_state(f"s{i}"), None if i % base_every == 0 else i - 1)


def test_save_verify_and_prune_whole_chains(tmp_path):
    store = CheckpointStore(tmp_path, keep_chains=2)
    save_chain(store, range(8), base_every=3)
    # Chains 0-2 went before base 6 was written; 3-5 is whole, 6-7 the current one.
    assert [p for p, _ in store.list()] == [3, 4, 5, 6, 7]
    index, chain = store.latest_restorable()
    assert index == 7 and [p.name for p in chain] == ["ckpt-000000006", "ckpt-000000007"]
    assert (chain[-1] / "state.json").read_text() == "s7" and store.verify(chain[-1]) is None
    assert store.latest_valid() == (7, chain[-1])


def test_a_corrupt_increment_falls_back_to_the_checkpoint_before_it(tmp_path, caplog):
    store = CheckpointStore(tmp_path, keep_chains=2)
    save_chain(store, range(6), base_every=10)
    rows = store.path_of(3) / "table" / "rows.npy"
    rows.write_bytes(rows.read_bytes()[:-1])
    with caplog.at_level(logging.WARNING):
        index, chain = store.latest_restorable()
    assert index == 2 and [p.name for p in chain] == [f"ckpt-00000000{i}" for i in range(3)]
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(messages) == 3 and "ckpt-000000003 it builds on is damaged" in messages[0]
    assert "table/rows.npy fails its checksum" in messages[2]
    store.discard_after(index)
    assert [p for p, _ in store.list()] == [0, 1, 2]


def test_a_damaged_base_falls_back_to_the_previous_chain(tmp_path):
    store = CheckpointStore(tmp_path, keep_chains=2)
    save_chain(store, range(7), base_every=4)
    (store.path_of(4) / "state.json").write_text("garbage")
    assert store.latest_restorable()[0] == 3
    shutil.rmtree(store.path_of(4))
    assert store.latest_restorable()[0] == 3


def test_corrupt_newest_falls_back_with_one_warning(tmp_path, caplog):
    store = CheckpointStore(tmp_path, keep_chains=2)
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
    store = CheckpointStore(tmp_path, keep_chains=2)
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
    store = CheckpointStore(tmp_path, keep_chains=2)
    store.save(0, write_state("a"))

    def crash(directory):
        (directory / "state.json").write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        store.save(1, crash)
    assert store.latest_valid()[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000000000"]


def test_a_temporary_left_by_a_killed_writer_is_removed_by_the_next_save(tmp_path):
    store = CheckpointStore(tmp_path, keep_chains=2)
    stale = tmp_path / ".ckpt-000000001.killed.tmp"
    stale.mkdir()
    (stale / "state.json").write_text("half")
    store.save(1, write_state("b"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-000000001"]


def test_resave_replaces_a_damaged_checkpoint_of_the_same_pass(tmp_path):
    store = CheckpointStore(tmp_path, keep_chains=2)
    path = store.save(0, write_state("a"))
    (path / "state.json").write_text("garbage")
    store.save(0, write_state("fixed"))
    assert store.verify(path) is None and (path / "state.json").read_text() == "fixed"


def test_store_rejects_bad_keep(tmp_path):
    with pytest.raises(ValueError, match="keep_chains must be >= 2"):
        CheckpointStore(tmp_path, keep_chains=1)
