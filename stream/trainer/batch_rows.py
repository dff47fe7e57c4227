"""Row selection on a :class:`pepnet.batch.SampleBatch` (reorder, filter)."""

from __future__ import annotations

import numpy as np

from pepnet.batch import SampleBatch


def take_rows(batch: SampleBatch, rows: np.ndarray) -> SampleBatch:
    """A new batch holding ``batch``'s rows at the int indices ``rows``, in that order (copies)."""
    rows = np.asarray(rows, dtype=np.int64)
    return SampleBatch(
        keys=batch.keys[rows],
        key_mask=batch.key_mask[rows],
        domain=batch.domain[rows],
        dense=batch.dense[rows],
        labels=batch.labels[rows],
        label_mask=batch.label_mask[rows],
        user_id=batch.user_id[rows],
        event_time_ms=batch.event_time_ms[rows],
        sample_id=[batch.sample_id[i] for i in rows.tolist()],
    )
