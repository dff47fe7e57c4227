"""Synthetic per-partition messages as DecodedChunks, for the pure-logic trainer tests."""

from __future__ import annotations

import numpy as np

from pepnet.batch import SampleBatch
from stream.trainer.pass_assembler import DecodedChunk

TASKS = ["click", "like"]
DOMAINS = ["tab0", "tab1"]


def make_batch(sample_ids: list[str], event_times: list[int], seed: int = 0) -> SampleBatch:
    """A SampleBatch with the given ids and event times and random labels/domains."""
    n = len(sample_ids)
    rng = np.random.default_rng(seed)
    return SampleBatch(
        keys=rng.integers(0, 2**63, size=(n, 3), dtype=np.uint64),
        key_mask=np.ones((n, 3), dtype=bool),
        domain=rng.integers(0, len(DOMAINS), size=n).astype(np.int64),
        dense=rng.random((n, 1), dtype=np.float32),
        labels=rng.integers(0, 2, size=(n, len(TASKS))).astype(np.float32),
        label_mask=rng.random((n, len(TASKS))) < 0.8,
        user_id=rng.integers(0, 100, size=n).astype(np.int64),
        event_time_ms=np.asarray(event_times, dtype=np.int64),
        sample_id=list(sample_ids),
    )


def partition_log(partition: int, n: int, start_time: int = 0, step_ms: int = 10) -> tuple[list[str], list[int]]:
    """Ids and increasing event times of ``n`` messages of one partition."""
    ids = [f"p{partition}-{i}" for i in range(n)]
    times = [start_time + i * step_ms + partition for i in range(n)]
    return ids, times


def chunks_of(
    partition: int, ids: list[str], times: list[int], sizes: list[int], first_offset: int = 0
) -> list[DecodedChunk]:
    """Split one partition's messages (offsets from ``first_offset``) into chunks of ``sizes``."""
    out = []
    start = 0
    whole = make_batch(ids, times, seed=partition)  # one draw per partition: labels do not depend on sizes
    for size in sizes:
        stop = min(start + size, len(ids))
        if stop <= start:
            break
        offsets = np.arange(first_offset + start, first_offset + stop, dtype=np.int64)
        out.append(DecodedChunk(partition, offsets, whole.slice(start, stop), int(offsets[-1]) + 1))
        start = stop
    return out
