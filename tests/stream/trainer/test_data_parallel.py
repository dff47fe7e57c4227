"""Two trainer processes (gloo on loopback) train a pass like one process trains it.

Rank r holds the samples of partition r of a pass; the single-process reference trains the same
pass in its event-time order on one ``EmbeddingTable``. The data-parallel steps (DDP with the
rank-order sum hook, loss weights by each rank's share, global domain statistics, the sharded
table) must give the same predictions, dense weights and rows up to float rounding, with
mini-batches that split unevenly between the ranks and some that one rank has no row of.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from embedding_store.config import TableConfig
from embedding_store.shard_exchange import ShardExchange
from embedding_store.sharded_table import ShardedEmbeddingTable
from embedding_store.table import EmbeddingTable
from pepnet.config import ModelConfig
from stream.events.batching import SampleBatcher
from stream.trainer.batch_rows import take_rows
from stream.trainer.data_parallel import DataParallelSteps, LocalSteps
from stream.trainer.global_pass import GlobalPass
from stream.trainer.manifest import PassManifest
from stream.trainer.pass_assembler import AssembledPass
from stream.trainer.rank_group import RankGroup
from stream.trainer.training_model import TrainingModel
from tests.pepnet.model_fixtures import small_schema
from tests.pepnet.sample_fixtures import synthetic_samples

SAMPLES, BATCH = 900, 128
TABLE = TableConfig(dim=8, budget_bytes=4 << 20)
MODEL = ModelConfig(tower_hidden=[32, 16], gate_hidden=16, bottom_hidden=[32], expert_hidden=[32])


def the_pass() -> tuple[object, np.ndarray]:
    """The pass's batch (event-time order) and the partition of each row: bursts of one partition,
    so that some mini-batches hold rows of one partition only."""
    schema = small_schema()
    batch = SampleBatcher(schema).build(synthetic_samples(schema, SAMPLES, seed=3))
    partitions = (np.arange(SAMPLES) // 50 % 2 if SAMPLES else np.zeros(0)).astype(np.int64)
    partitions[300:560] = 0  # two whole mini-batches of partition 0
    return batch, partitions


def part_of(partition: int) -> AssembledPass:
    batch, partitions = the_pass()
    rows = np.flatnonzero(partitions == partition)
    manifest = PassManifest(0, "t", [], len(rows), 0, len(rows), 0, 0, None)
    return AssembledPass(take_rows(batch, rows), manifest, partitions[rows], np.arange(len(rows), dtype=np.int64))


def train(model: TrainingModel, steps: LocalSteps, closed: AssembledPass, group: RankGroup) -> dict:
    view = GlobalPass.of(closed, group)
    batch = closed.batch
    predictions = []
    for index in range(view.batches(BATCH)):
        start, stop = view.local_rows(index, BATCH)
        predictions.append(steps.score(batch.slice(start, stop)))
        steps.train(batch.slice(start, stop), view, view.global_rows(index, BATCH))
    probabilities = view.gather(np.concatenate(predictions), group)
    return {
        "probabilities": probabilities,
        "network": {k: v.clone() for k, v in model.network.state_dict().items()},
        "statistics": model.step.domain_stats.state(),
        "adam_steps": [s["step"].item() for s in model.step.optimizer.state_dict()["state"].values()],
    }


def rank_main(rank: int, world_size: int) -> dict:
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    group = RankGroup(rank, world_size, rank, ShardExchange())
    table = ShardedEmbeddingTable.create(TABLE, group.exchange)
    model = TrainingModel(small_schema(), MODEL, table)
    result = train(model, DataParallelSteps(model, group), part_of(rank), group)
    result["rows"] = table.local.live_rows()
    return result


def test_two_ranks_train_a_pass_like_one_process():
    from tests.process_group import run_in_ranks

    ranks = run_in_ranks(rank_main, 2)
    batch, _ = the_pass()
    model = TrainingModel(small_schema(), MODEL, EmbeddingTable(TABLE))
    closed = AssembledPass(batch, PassManifest(0, "t", [], SAMPLES, 0, SAMPLES, 0, 0, None),
                           np.zeros(SAMPLES, dtype=np.int64), np.arange(SAMPLES, dtype=np.int64))  # fmt: skip
    single = train(model, LocalSteps(model), closed, RankGroup())

    for rank in ranks:
        np.testing.assert_allclose(rank["probabilities"], single["probabilities"], rtol=1e-4, atol=1e-6)
        for name, value in single["network"].items():
            torch.testing.assert_close(rank["network"][name], value, rtol=1e-4, atol=1e-6, msg=name)
        for name, value in single["statistics"].items():
            np.testing.assert_allclose(rank["statistics"][name], value, rtol=1e-12)
        assert rank["adam_steps"] == single["adam_steps"]
    for name in single["network"]:  # the ranks agree with each other bit for bit
        assert torch.equal(ranks[0]["network"][name], ranks[1]["network"][name]), name
    expected = model.table.live_rows()
    shards = [r["rows"] for r in ranks]
    order = np.argsort(np.concatenate([s["keys"] for s in shards]))
    for name in ("keys", "updates", "created"):
        np.testing.assert_array_equal(np.concatenate([s[name] for s in shards])[order], expected[name])
    for name in ("weights", "accumulator"):
        np.testing.assert_allclose(np.concatenate([s[name] for s in shards])[order], expected[name], rtol=1e-3,
                                   atol=1e-6)  # fmt: skip


def test_global_pass_of_one_rank_is_the_pass_itself():
    closed = part_of(0)
    view = GlobalPass.of(closed, RankGroup())
    assert view.size == len(closed.batch)
    assert view.local_rows(1, 100) == (100, 200)
    assert dataclasses.is_dataclass(view)
