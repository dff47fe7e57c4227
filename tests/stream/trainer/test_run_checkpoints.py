"""Which committed pass a run restores, whatever world size wrote it; the commit of N ranks."""

import json

from stream.trainer.checkpoint import CheckpointStore
from stream.trainer.rank_group import RankGroup
from stream.trainer.run_checkpoints import COMMIT_FILE, RunCheckpoints

from .test_checkpoint import save_chain


def sharded_stores(root, world_size):
    return [CheckpointStore(root / f"shard-{r}-of-{world_size}", keep_chains=2) for r in range(world_size)]


def commit(root, pass_index, world_size):
    (root / COMMIT_FILE).write_text(json.dumps({"pass_index": pass_index, "world_size": world_size}))


def test_the_newest_committed_pass_wins_whatever_the_world_size(tmp_path):
    save_chain(CheckpointStore(tmp_path, keep_chains=2), range(4), base_every=10)  # one process: 0-3
    checkpoints = RunCheckpoints(tmp_path, 2, RankGroup())
    assert checkpoints.latest().pass_index == 3 and checkpoints.latest().world_size == 1
    for store in sharded_stores(tmp_path, 2):  # then two ranks: 4-7, the last one never committed
        save_chain(store, range(4, 8), base_every=4)
    commit(tmp_path, 6, 2)
    latest = checkpoints.latest()
    assert (latest.pass_index, latest.world_size) == (6, 2)
    assert [[p.name for p in chain] for chain in latest.chains] == [[f"ckpt-00000000{i}" for i in (4, 5, 6)]] * 2
    assert latest.directories == [tmp_path / f"shard-{r}-of-2" / "ckpt-000000006" for r in range(2)]


def test_a_damaged_shard_falls_back_to_a_pass_every_shard_holds(tmp_path, caplog):
    stores = sharded_stores(tmp_path, 2)
    for store in stores:
        save_chain(store, range(5), base_every=10)
    commit(tmp_path, 4, 2)
    (stores[1].path_of(3) / "state.json").write_text("torn")  # shard 1's pass 3: pass 4 builds on it
    latest = RunCheckpoints(tmp_path, 2, RankGroup()).latest()
    assert latest.pass_index == 2
    assert any("shard-1-of-2/ckpt-000000004" in r.getMessage() for r in caplog.records)


def test_a_new_world_size_deletes_the_old_checkpoints_once_it_holds_its_own_chains(tmp_path):
    for store in sharded_stores(tmp_path, 2):
        save_chain(store, range(3), base_every=10)
    commit(tmp_path, 2, 2)
    one = RunCheckpoints(tmp_path, 2, RankGroup())
    save_chain(one.store, range(3, 5), base_every=2)  # bases 4 only: one chain of ours
    one.commit(4)
    assert (tmp_path / "shard-0-of-2").exists() and (tmp_path / COMMIT_FILE).exists()
    save_chain(one.store, range(5, 7), base_every=2)  # base 6: two chains of ours
    one.commit(6)
    assert not (tmp_path / "shard-0-of-2").exists() and not (tmp_path / COMMIT_FILE).exists()
    assert one.latest().pass_index == 6
