"""From a SampleBatch's key columns to pooled embeddings ``[B, F, dim]`` that autograd can see.

Each distinct key of the batch is looked up and gathered once; occurrences are pooled per
(sample, feature) with one ``index_add``, so multi-valued features are mean-pooled for free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from embedding_store.interface import EmbeddingRows
from pepnet.batch import SampleBatch
from pepnet.schema import FeatureSchema


@dataclass
class PooledLookup:
    """The table rows a batch touched and its pooled embeddings.

    ``rows`` is the leaf tensor ``[U, dim]`` of the distinct keys' weights (its ``.grad`` is the
    gradient to push to ``slots``); ``occurrence_slots``/``occurrence_sample`` list every
    key occurrence's slot and sample (for feature-score feedback).
    """

    slots: np.ndarray  # int64 [U], -1 = key without a row
    rows: torch.Tensor  # float32 [U, dim]
    embeddings: torch.Tensor  # float32 [B, F, dim]
    occurrence_slots: np.ndarray  # int64 [n]
    occurrence_sample: np.ndarray  # int64 [n]


class EmbeddingLookup:
    """Pools the embeddings of one schema's key columns from any table with the :class:`EmbeddingRows` interface."""

    def __init__(self, table: EmbeddingRows, schema: FeatureSchema) -> None:
        self.table = table
        slots = schema.slots()
        self.num_features = len(slots)
        self.column_feature = np.concatenate(
            [np.full(slot.width, index, dtype=np.int64) for index, slot in enumerate(slots)]
        )

    def pool(self, batch: SampleBatch, train: bool) -> PooledLookup:
        """Look up (creating rows only when ``train``), gather once, mean-pool per feature."""
        b, f = len(batch), self.num_features
        sample, column = np.nonzero(batch.key_mask)
        unique_keys, inverse = np.unique(batch.keys[sample, column], return_inverse=True)
        now_ms = int(batch.event_time_ms.max())
        slots = self.table.lookup(unique_keys, now_ms, train=train)
        rows = torch.from_numpy(self.table.gather(slots)).requires_grad_(train)
        target = sample * f + self.column_feature[column]
        counts = np.bincount(target, minlength=b * f).astype(np.float32)
        pooled = torch.zeros(b * f, rows.shape[1]).index_add_(
            0, torch.from_numpy(target), rows[torch.from_numpy(inverse)]
        )
        if counts.max(initial=0.0) > 1.0:  # only multi-valued features need the division
            pooled = pooled / torch.from_numpy(np.maximum(counts, 1.0))[:, None]
        return PooledLookup(
            slots=slots,
            rows=rows,
            embeddings=pooled.view(b, f, -1),
            occurrence_slots=slots[inverse],
            occurrence_sample=sample,
        )
