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

    ``torch.unique`` then ``index_add_`` (2.2x faster than a full ``np.argsort`` and a segmented
    sum on 65,536 Zipf ids here). ``index_add_`` adds the rows of a slot in their order in ``grads``
    on one thread, so results are bit-identical for identical inputs.
    """
    import torch  # here, not at the top: loading a config imports this package, and --help must not load torch

    unique, inverse = torch.unique(torch.from_numpy(slots), sorted=True, return_inverse=True)
    if unique.shape[0] == slots.shape[0]:  # no repeats (a training step hands over distinct keys)
        summed = np.empty(grads.shape, dtype=np.float32)
        put_rows(summed, inverse.numpy(), grads)
        return unique.numpy(), summed
    summed_rows = torch.zeros((unique.shape[0], grads.shape[1]), dtype=torch.float32)
    summed_rows.index_add_(0, inverse, torch.from_numpy(np.ascontiguousarray(grads)))
    return unique.numpy(), summed_rows.numpy()


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
