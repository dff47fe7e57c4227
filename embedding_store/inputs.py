"""Checks and conversions of what callers hand to the table: keys, slots, gradients, event times."""

from __future__ import annotations

from typing import Any

import numpy as np

MAX_TICK = int(np.iinfo(np.uint32).max)


def to_numpy(values: Any) -> np.ndarray:
    """numpy view of a numpy array or torch tensor (without importing torch)."""
    if hasattr(values, "detach"):
        values = values.detach().cpu().numpy()
    return np.asarray(values)


def as_key_array(keys: Any) -> np.ndarray:
    """Flat contiguous uint64 keys (int64 input is reinterpreted bit for bit)."""
    array = to_numpy(keys)
    if array.dtype == np.int64:
        array = array.view(np.uint64)
    if array.dtype != np.uint64:
        raise ValueError(f"keys must be a uint64 (or int64) array, got dtype {array.dtype}")
    return np.ascontiguousarray(array).reshape(-1)


def as_slot_array(slots: Any, capacity: int) -> np.ndarray:
    """Flat int64 slots, each -1 or in ``[0, capacity)``."""
    array = to_numpy(slots)
    if array.dtype.kind not in "iu":
        raise ValueError(f"slots must be an integer array, got dtype {array.dtype}")
    flat = array.astype(np.int64, copy=False).reshape(-1)
    if flat.shape[0] and (flat.min() < -1 or flat.max() >= capacity):
        raise ValueError(f"slots must be -1 or in [0, {capacity}), got values in [{flat.min()}, {flat.max()}]")
    return flat


def event_ticks(event_time_ms: int | np.ndarray, n: int, resolution_ms: int) -> int | np.ndarray:
    """Event time in ms as uint32 ticks of ``resolution_ms``: an int for a scalar, else one per key."""
    if np.ndim(event_time_ms) == 0:
        ms = int(event_time_ms)
        if not 0 <= ms // resolution_ms <= MAX_TICK:
            raise ValueError(f"event_time_ms must be in [0, {MAX_TICK * resolution_ms}], got {ms}")
        return ms // resolution_ms
    ms_array = np.asarray(event_time_ms).reshape(-1)
    if ms_array.shape[0] != n or ms_array.dtype.kind not in "iu":
        raise ValueError(
            f"event_time_ms must be an int or an int array with one entry per key ({n}), "
            f"got dtype {ms_array.dtype} shape {np.shape(event_time_ms)}"
        )
    ticks = ms_array.astype(np.int64) // resolution_ms
    if ticks.shape[0] and (ticks.min() < 0 or ticks.max() > MAX_TICK):
        raise ValueError(f"event_time_ms must be in [0, {MAX_TICK * resolution_ms}]")
    return ticks.astype(np.uint32)


def gradient_rows(grads: Any, slots: int, dim: int) -> np.ndarray:
    """float32 ``[slots, dim]`` gradient rows (numpy or torch in); ValueError unless one row per slot."""
    gradients = to_numpy(grads).astype(np.float32, copy=False)
    if gradients.size != slots * dim:
        raise ValueError(f"grads must have one row of {dim} per slot ({slots}), got shape {np.shape(grads)}")
    return gradients.reshape(-1, dim)


def feedback_labels(slots: Any, positives: Any) -> tuple[np.ndarray, np.ndarray]:
    """(slots, positives) as arrays of one shape: ``positives`` has the shape of ``slots``, or one
    entry per row of a 2-D ``slots`` [B, S] (broadcast over the row)."""
    slot_array = np.asarray(slots)
    labels = to_numpy(positives)
    if slot_array.ndim == 2 and labels.shape == (slot_array.shape[0],):
        labels = np.broadcast_to(labels[:, None], slot_array.shape)
    if labels.shape != slot_array.shape:
        raise ValueError(
            f"positives must have the shape of slots {slot_array.shape} (or [B] for [B, S]), got {labels.shape}"
        )
    return slot_array, labels
