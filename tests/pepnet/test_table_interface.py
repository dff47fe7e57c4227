"""The embedding-table seam is real: a TrainStep trains on a second, dict-backed table.

``DictRows`` implements ``EmbeddingRows`` with a Python dict of rows and its own AdaGrad, written
independently of ``embedding_store``. With the same initial rows, it must train the same model as
``EmbeddingTable`` (no admission filter, no eviction): same losses, same predictions, same rows.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedding_store.config import TableConfig
from embedding_store.interface import EmbeddingRows, EmbeddingTableInterface
from embedding_store.row_init import initial_weights
from embedding_store.table import EmbeddingTable
from pepnet.model import build_model
from pepnet.model_input import InputShape
from pepnet.train_step import TrainStep
from tests.pepnet.model_fixtures import small_schema
from tests.pepnet.test_train_step import CONFIG, DIM, batches


class DictRows:
    """Rows in a dict keyed by uint64 key; slots are positions in a growing list (never deleted)."""

    def __init__(self, config: TableConfig, seed: int) -> None:
        self.config = config
        self.seed = seed
        self.slot_of: dict[int, int] = {}
        self.weights: list[np.ndarray] = []
        self.accumulator: list[float] = []
        self.shows: list[float] = []
        self.features: list[str] = []

    @property
    def dim(self) -> int:
        return self.config.dim

    def register_features(self, names: list[str]) -> None:
        self.features.extend(names)

    def lookup(self, keys: np.ndarray, event_time_ms: int | np.ndarray, train: bool = True) -> np.ndarray:
        flat = np.asarray(keys, dtype=np.uint64).reshape(-1)
        slots = np.full(flat.shape[0], -1, dtype=np.int64)
        for i, key in enumerate(flat.tolist()):
            if key == 0:
                continue
            if key not in self.slot_of and train:
                self.slot_of[key] = len(self.weights)
                row = initial_weights(np.array([key], dtype=np.uint64), self.dim, self.seed, self.config.init_range)
                self.weights.append(row[0].copy())
                self.accumulator.append(0.0)
                self.shows.append(0.0)
            slots[i] = self.slot_of.get(key, -1)
        return slots.reshape(np.shape(keys))

    def gather(self, slots: np.ndarray) -> np.ndarray:
        default = np.full(self.dim, self.config.default_value, dtype=np.float32)
        rows = [self.weights[s] if s >= 0 else default for s in np.asarray(slots).reshape(-1).tolist()]
        return np.array(rows, dtype=np.float32).reshape((*np.shape(slots), self.dim))

    def apply_gradients(self, slots: np.ndarray, grads) -> int:
        flat = np.asarray(slots).reshape(-1)
        grads = np.asarray(grads, dtype=np.float32).reshape(-1, self.dim)
        summed: dict[int, np.ndarray] = {}
        for slot, grad in zip(flat.tolist(), grads, strict=True):
            if slot >= 0:
                summed[slot] = summed.get(slot, np.zeros(self.dim, dtype=np.float32)) + grad
        g0, lr = self.config.initial_accumulator, self.config.learning_rate
        for slot, grad in summed.items():
            scale = lr * np.sqrt(g0 / (g0 + self.accumulator[slot]))
            self.weights[slot] = self.weights[slot] - grad * np.float32(scale)
            self.accumulator[slot] += float(np.mean(grad.astype(np.float64) ** 2))
        return len(summed)

    def record_feedback(self, slots: np.ndarray, positives) -> None:
        for slot in np.asarray(slots).reshape(-1).tolist():
            if slot >= 0:
                self.shows[slot] += 1.0


def _step_on(table: EmbeddingRows) -> TrainStep:
    torch.manual_seed(0)
    schema = small_schema()
    return TrainStep(build_model(CONFIG, InputShape.from_schema(schema, DIM)), table, schema, CONFIG)


def test_both_tables_satisfy_the_interface():
    config = TableConfig(dim=DIM, budget_bytes=4 << 20)
    assert isinstance(DictRows(config, seed=0), EmbeddingRows)
    assert isinstance(EmbeddingTable(config, seed=0), EmbeddingTableInterface)
    assert not isinstance(DictRows(config, seed=0), EmbeddingTableInterface)  # no pass end, export...


def test_a_train_step_trains_the_same_model_on_a_dict_table():
    config = TableConfig(dim=DIM, budget_bytes=4 << 20)
    dict_rows = DictRows(config, seed=0)
    table = EmbeddingTable(config, seed=0)
    on_dict, on_table = _step_on(dict_rows), _step_on(table)
    data = batches(1536, batch_size=256)
    for batch in data[:-1]:
        a, b = on_dict.step(batch), on_table.step(batch)
        assert a.loss == pytest.approx(b.loss, rel=1e-5)
        np.testing.assert_allclose(a.probabilities, b.probabilities, rtol=1e-5, atol=1e-6)
    held_out = data[-1]
    np.testing.assert_allclose(on_dict.score(held_out), on_table.score(held_out), rtol=1e-4, atol=1e-5)
    assert len(dict_rows.weights) == table.stats().rows > 0
    keys = np.array(sorted(dict_rows.slot_of), dtype=np.uint64)
    dict_weights = dict_rows.gather(dict_rows.lookup(keys, 0, train=False))
    table_weights = table.gather(table.lookup(keys, 0, train=False))
    np.testing.assert_allclose(dict_weights, table_weights, rtol=1e-4, atol=1e-6)
    assert sum(dict_rows.shows) > 0
