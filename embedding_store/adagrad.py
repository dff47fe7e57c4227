"""Sparse AdaGrad on de-duplicated rows (PaddlePaddle's form, row-wise or element-wise accumulator).

For each unique row with summed gradient ``g`` and accumulator ``G`` (starting at 0):
``w <- w - lr * g * sqrt(g0 / (g0 + G))`` then ``G <- G + mean(g**2)`` (row-wise, 4 B per row) or
``G <- G + g**2`` (element-wise, 4 B per element). ``g0`` is ``initial_accumulator`` (Paddle: 3.0).
"""

from __future__ import annotations

import numpy as np

from embedding_store.row_access import put_rows, take_rows


def sum_duplicate_gradients(slots: np.ndarray, grads: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unique slots (ascending) and the float32 sum of the gradient rows of each one.

    The summation order of duplicates is fixed by the (deterministic) sort, so results are
    bit-identical for identical inputs.
    """
    order = np.argsort(slots)
    sorted_slots = slots[order]
    sorted_grads = take_rows(grads, order)
    first = np.concatenate(([True], sorted_slots[1:] != sorted_slots[:-1]))
    if first.all():
        return sorted_slots, sorted_grads
    starts = np.flatnonzero(first)
    summed = take_rows(sorted_grads, starts)
    # reduceat pays per group: sum only the repeats (rows after each group's first), then add them.
    repeats = np.flatnonzero(~first)
    group = (np.cumsum(first) - 1)[repeats]
    group_starts = np.flatnonzero(np.concatenate(([True], group[1:] != group[:-1])))
    targets = group[group_starts]
    repeated_sums = np.add.reduceat(take_rows(sorted_grads, repeats), group_starts, axis=0)
    put_rows(summed, targets, take_rows(summed, targets) + repeated_sums)
    return sorted_slots[starts], summed


def adagrad_step(
    weights: np.ndarray,
    accumulator: np.ndarray,
    slots: np.ndarray,
    grads: np.ndarray,
    learning_rate: float,
    initial_accumulator: float,
) -> None:
    """Apply one AdaGrad step in place to unique ``slots`` with their summed ``grads`` [n, dim]."""
    g0 = np.float32(initial_accumulator)
    history = take_rows(accumulator, slots)
    scale = np.sqrt(g0 / (g0 + history)) * np.float32(learning_rate)
    rows = take_rows(weights, slots)  # gather, update, scatter: much faster than ``weights[slots] -= ...``
    if accumulator.ndim == 1:
        rows -= grads * scale[:, None]
        squares = np.einsum("ij,ij->i", grads, grads) * np.float32(1.0 / grads.shape[1])
    else:
        rows -= grads * scale
        squares = grads * grads
    put_rows(weights, slots, rows)
    put_rows(accumulator, slots, history + squares)
