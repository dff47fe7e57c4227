"""Initial weights of a new row, derived from its key and the table seed (not from slot or order)."""

from __future__ import annotations

import numpy as np

from embedding_store.keys import mix64

_SEED_SPREAD = 0xD6E8FEB86659FD93


def initial_weights(keys: np.ndarray, dim: int, seed: int, init_range: float) -> np.ndarray:
    """float32 [n, dim] uniform in [-init_range, init_range] (16-bit steps); same key, same row."""
    if init_range == 0.0:
        return np.zeros((keys.shape[0], dim), dtype=np.float32)
    row_seed = mix64(keys ^ np.uint64((seed * _SEED_SPREAD) % (1 << 64)))
    words = (dim + 3) // 4  # each 64-bit hash gives four 16-bit uniforms
    bits = mix64(row_seed[:, None] + np.arange(words, dtype=np.uint64)[None, :])
    unit = bits.view(np.uint16).reshape(keys.shape[0], 4 * words)[:, :dim].astype(np.float32)
    return (unit * np.float32(2.0 / 65535.0) - np.float32(1.0)) * np.float32(init_range)
