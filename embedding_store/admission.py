"""Admission of new keys: a compact counting filter (k sightings) and a per-batch probability."""

from __future__ import annotations

import numpy as np

from embedding_store.keys import mix64

_SATURATION = 255


class CountingFilter:
    """Count-min sketch of key sightings: ``FILTER_ROWS`` rows of saturating uint8 counters.

    The estimate of a key is the minimum of its counters, so it never under-counts (a key is never
    admitted late); collisions can only admit a key early. ``halve`` ages every counter so that
    keys seen long ago fade out and the filter does not fill up under an unbounded stream.
    """

    def __init__(self, rows: int, width: int, seed: int) -> None:
        self.counters = np.zeros((rows, width), dtype=np.uint8)
        self._seeds = [np.uint64((seed * 0x2545F4914F6CDD1D + row + 1) % (1 << 64)) for row in range(rows)]

    @property
    def nbytes(self) -> int:
        return int(self.counters.nbytes)

    def _columns(self, row: int, keys: np.ndarray) -> np.ndarray:
        high = mix64(keys ^ self._seeds[row]) >> np.uint64(32)
        return ((high * np.uint64(self.counters.shape[1])) >> np.uint64(32)).astype(np.int64)

    def add(self, keys: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """Count ``counts`` more sightings of distinct ``keys``; return each key's estimate after."""
        estimate = np.full(keys.shape[0], _SATURATION, dtype=np.int64)
        for row in range(self.counters.shape[0]):
            columns = self._columns(row, keys)
            unique_columns, inverse = np.unique(columns, return_inverse=True)
            added = np.bincount(inverse, weights=counts, minlength=unique_columns.shape[0]).astype(np.int64)
            counters = self.counters[row]
            updated = np.minimum(counters[unique_columns].astype(np.int64) + added, _SATURATION)
            counters[unique_columns] = updated.astype(np.uint8)
            np.minimum(estimate, updated[inverse], out=estimate)
        return estimate

    def halve(self) -> None:
        """Age every counter: c <- c // 2."""
        self.counters >>= 1


def admission_probability_draw(rng: np.random.Generator, counts: np.ndarray, probability: float) -> np.ndarray:
    """Admit each candidate with probability ``1 - (1 - p) ** count`` (count = sightings in the batch)."""
    if probability >= 1.0:
        return np.ones(counts.shape[0], dtype=bool)
    return rng.random(counts.shape[0]) < 1.0 - np.power(1.0 - probability, counts)
