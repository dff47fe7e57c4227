"""Row selection on a :class:`pepnet.batch.SampleBatch` (reorder, filter) and batches without samples."""

from __future__ import annotations

import numpy as np

from pepnet.batch import SampleBatch
from pepnet.schema import FeatureSchema


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


def empty_batch(schema: FeatureSchema) -> SampleBatch:
    """A batch of zero rows with ``schema``'s columns."""
    return padding_batch(schema).slice(0, 0)


def padding_batch(schema: FeatureSchema) -> SampleBatch:
    """One row that counts for nothing: every key and label masked, domain 0, event time 0 (a
    trainer process with no sample in a global mini-batch still takes part in its collectives)."""
    columns, tasks = schema.num_key_columns, len(schema.tasks)
    return SampleBatch(
        keys=np.zeros((1, columns), dtype=np.uint64),
        key_mask=np.zeros((1, columns), dtype=bool),
        domain=np.zeros(1, dtype=np.int64),
        dense=np.zeros((1, len(schema.dense)), dtype=np.float32),
        labels=np.zeros((1, tasks), dtype=np.float32),
        label_mask=np.zeros((1, tasks), dtype=bool),
        user_id=np.zeros(1, dtype=np.int64),
        event_time_ms=np.zeros(1, dtype=np.int64),
        sample_id=[""],
    )
