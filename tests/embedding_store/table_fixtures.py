"""Helpers shared by the embedding-store tests."""

from embedding_store import TableConfig


def small_config(**overrides) -> TableConfig:
    """A table of a few hundred rows with millisecond ticks (policies easy to reach in tests)."""
    values = dict(dim=4, budget_bytes=32 * 1024, time_resolution_ms=1, init_range=0.1)
    values.update(overrides)
    return TableConfig(**values)
