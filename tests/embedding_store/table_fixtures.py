"""Helpers shared by the embedding-store tests."""

import numpy as np

from embedding_store import EmbeddingTable, PassEndReport, TableConfig, feature_keys


def small_config(**overrides) -> TableConfig:
    """A table of a few hundred rows with millisecond ticks (policies easy to reach in tests)."""
    values = dict(dim=4, budget_bytes=32 * 1024, time_resolution_ms=1, init_range=0.1)
    values.update(overrides)
    return TableConfig(**values)


def train_pass(
    table: EmbeddingTable, rng: np.random.Generator, pass_index: int, model_dir, keys: int = 200, drift: int = 30
) -> PassEndReport:
    """Three batches of Zipf item ids drifting with the pass (lookup, feedback, AdaGrad), one
    evaluation lookup, the pass end and an export into ``model_dir``."""
    t = 100 * (pass_index + 1)
    for _ in range(3):
        slots = table.lookup(feature_keys("item_id", rng.zipf(1.2, size=keys) + drift * pass_index), t)
        table.record_feedback(slots, rng.integers(0, 2, size=slots.size))
        table.apply_gradients(slots, rng.standard_normal((slots.size, table.dim)).astype(np.float32))
    table.lookup(feature_keys("user_id", rng.integers(0, 50, size=20)), t, train=False)
    report = table.end_pass(pass_index, t + 50)
    table.export(model_dir, pass_index)
    return report
