"""The training step against the real embedding table: two optimisers, scoring, learning."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from embedding_store.config import TableConfig
from embedding_store.table import EmbeddingTable
from pepnet.auc import auc
from pepnet.config import ModelConfig
from pepnet.model import build_model
from pepnet.model_input import InputShape
from pepnet.schema import FeatureSchema, TaskSpec
from pepnet.train_step import TrainStep
from stream.events.batching import SampleBatcher
from stream.events.formats import Impression, JoinInfo, LabelledSample
from tests.pepnet.model_fixtures import small_schema
from tests.pepnet.sample_fixtures import synthetic_samples

DIM = 8
CONFIG = ModelConfig(tower_hidden=[32, 16], gate_hidden=16, bottom_hidden=[32], expert_hidden=[32])


def make_step(architecture: str = "pepnet", **changes) -> TrainStep:
    schema = small_schema()
    config = dataclasses.replace(CONFIG, architecture=architecture, **changes)
    table = EmbeddingTable(TableConfig(dim=DIM, budget_bytes=4 << 20), seed=0)
    return TrainStep(build_model(config, InputShape.from_schema(schema, DIM)), table, schema, config)


def batches(n: int, batch_size: int = 256, seed: int = 0):
    schema = small_schema()
    samples = synthetic_samples(schema, n, seed=seed)
    batcher = SampleBatcher(schema)
    return [batcher.build(samples[i : i + batch_size]) for i in range(0, n, batch_size)]


def test_score_touches_neither_table_nor_model_nor_statistics():
    step = make_step()
    batch = batches(256)[0]
    before = [p.detach().clone() for p in step.model.parameters()]
    probabilities = step.score(batch)
    assert probabilities.shape == (256, 3) and probabilities.dtype == np.float32
    assert ((probabilities > 0) & (probabilities < 1)).all()
    assert step.table.stats().rows == 0  # train=False never creates rows
    assert step.domain_stats.observed.sum() == 0.0
    assert all(torch.equal(a, b) for a, b in zip(before, step.model.parameters(), strict=True))


def test_step_updates_rows_by_adagrad_and_the_network_by_adam():
    step = make_step()
    first, second = batches(512)
    step.step(first)
    rows = step.table.stats().rows
    assert rows > 0
    slots = step.table.lookup(np.unique(first.keys[first.key_mask]), 0, train=False)
    assert (slots >= 0).all()
    weights_before = step.table.gather(slots).copy()
    dense_before = [p.detach().clone() for p in step.model.parameters()]
    result = step.step(first)
    moved = np.abs(step.table.gather(slots) - weights_before).sum(1)
    assert (moved > 0).all()  # every row of the batch got a sparse AdaGrad update
    assert any(not torch.equal(a, b) for a, b in zip(dense_before, step.model.parameters(), strict=True))
    assert set(result.task_loss) == {"task0", "task1", "task2"}
    assert result.probabilities.shape == (256, 3)
    assert step.optimizer.param_groups[0]["lr"] == pytest.approx(3e-3)
    assert step.domain_stats.observed.sum() > 0


def test_pooling_means_multi_valued_features_and_skips_missing_ones():
    step = make_step()
    batch = batches(256)[0]
    pooled = step.lookup.pool(batch, train=True)
    tag = 3  # feature position of the 3-wide "tag" feature in small_schema
    keys = batch.keys[0, 3:6][batch.key_mask[0, 3:6]]
    expected = step.table.gather(step.table.lookup(keys, 0, train=False)).mean(0)
    assert np.allclose(pooled.embeddings[0, tag].detach().numpy(), expected, atol=1e-6)
    batch.key_mask[1, 3:6] = False  # a sample with no tag at all pools to zeros
    assert float(step.lookup.pool(batch, train=False).embeddings[1, tag].abs().sum()) == 0.0


def test_paper_online_preset_uses_the_papers_adam_rate():
    step = make_step(preset="paper-online")
    assert step.optimizer.param_groups[0]["lr"] == pytest.approx(5e-6)
    assert make_step(preset="paper-online", dense_lr=0.01).optimizer.param_groups[0]["lr"] == 0.01


@pytest.mark.parametrize(("architecture", "bf16"), [("pepnet", False), ("shared_bottom", False), ("pepnet", True)])
def test_progressive_auc_rises_well_above_chance(architecture, bf16):
    step = make_step(architecture, bf16_autocast=bf16)
    predictions, labels = [], []
    for i, batch in enumerate(batches(25_600)):
        p = step.score(batch)
        step.step(batch)
        if i >= 70:
            predictions.append(p[:, 0])
            labels.append(batch.labels[:, 0])
    assert predictions[0].dtype == np.float32 and all(p.dtype == torch.float32 for p in step.model.parameters())
    assert auc(np.concatenate(labels), np.concatenate(predictions)) > 0.8


@pytest.mark.parametrize("architecture", ["pepnet", "epnet_only"])
def test_a_fresh_model_learns_each_domains_rate_for_ids_it_never_saw(architecture):
    """Ids only (no side feature): after a few batches, a user, item and author never seen before
    get a prediction per domain that follows the domain's click rate."""
    schema = FeatureSchema(tasks=[TaskSpec("click")], domains=["low", "mid", "high"])
    rates = {"low": 0.1, "mid": 0.35, "high": 0.7}
    rng = np.random.default_rng(0)

    def samples(n: int, first_id: int) -> list[LabelledSample]:
        out = []
        for i in range(n):
            domain = schema.domains[i % 3]
            user, item, author = (first_id + int(v) for v in rng.integers(500, size=3))
            impression = Impression(f"i{first_id + i}", user, item, author, domain, 1_700_000_000_000 + i, {}, {})
            label = {"click": int(rng.random() < rates[domain])}
            out.append(LabelledSample(f"s{first_id + i}", impression, label, JoinInfo(window_ms=1000)))
        return out

    config = dataclasses.replace(CONFIG, architecture=architecture, domain_side_to_towers=True)
    table = EmbeddingTable(TableConfig(dim=DIM, budget_bytes=4 << 20), seed=0)
    step = TrainStep(build_model(config, InputShape.from_schema(schema, DIM)), table, schema, config)
    batcher = SampleBatcher(schema)
    for b in range(40):
        step.step(batcher.build(samples(256, 1000 * b)))
    unseen = batcher.build(samples(3, 10_000_000))  # one per domain, ids the table never saw
    assert (table.lookup(unseen.keys.ravel(), 0, train=False) == -1).all()
    low, mid, high = step.score(unseen)[:, 0]
    assert low < mid < high
    assert high - low > 0.25, (low, mid, high)  # without the domain side in the towers: all equal
