"""Typed batches: what the stream hands to the trainer, and what the dense model consumes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # annotations only: building batches (simulator, reader, decoder processes) must not load torch
    import torch


@dataclass
class SampleBatch:
    """A mini-batch of labelled samples as flat arrays (numpy, no torch).

    ``keys[b, s]`` is the embedding-table key of key column ``s`` (see
    ``FeatureSchema.slots()``); ``key_mask`` is False for the padding of multi-valued features
    and for missing values. ``label_mask[b, t]`` is False when task ``t`` was not observed.
    """

    keys: np.ndarray  # uint64 [B, S]
    key_mask: np.ndarray  # bool [B, S]
    domain: np.ndarray  # int64 [B]
    dense: np.ndarray  # float32 [B, D] normalised dense values
    labels: np.ndarray  # float32 [B, T]
    label_mask: np.ndarray  # bool [B, T]
    user_id: np.ndarray  # int64 [B]
    event_time_ms: np.ndarray  # int64 [B]
    sample_id: list[str]

    def __len__(self) -> int:
        return int(self.keys.shape[0])

    def slice(self, start: int, stop: int) -> SampleBatch:
        """Rows [start, stop) as a new batch (views, no copy)."""
        return SampleBatch(
            keys=self.keys[start:stop],
            key_mask=self.key_mask[start:stop],
            domain=self.domain[start:stop],
            dense=self.dense[start:stop],
            labels=self.labels[start:stop],
            label_mask=self.label_mask[start:stop],
            user_id=self.user_id[start:stop],
            event_time_ms=self.event_time_ms[start:stop],
            sample_id=self.sample_id[start:stop],
        )

    @staticmethod
    def concat(batches: list[SampleBatch]) -> SampleBatch:
        """One batch holding the rows of ``batches`` in order."""
        return SampleBatch(
            keys=np.concatenate([b.keys for b in batches]),
            key_mask=np.concatenate([b.key_mask for b in batches]),
            domain=np.concatenate([b.domain for b in batches]),
            dense=np.concatenate([b.dense for b in batches]),
            labels=np.concatenate([b.labels for b in batches]),
            label_mask=np.concatenate([b.label_mask for b in batches]),
            user_id=np.concatenate([b.user_id for b in batches]),
            event_time_ms=np.concatenate([b.event_time_ms for b in batches]),
            sample_id=[s for b in batches for s in b.sample_id],
        )


@dataclass
class EmbeddedBatch:
    """The dense model's input: embeddings already gathered from the table and pooled.

    ``embeddings[b, f]`` is the (mean-pooled) embedding of feature ``f`` in schema slot order.
    ``domain_stats[b]`` are domain-side statistics (e.g. running positive rate per task in the
    sample's domain), computed from earlier batches only.
    """

    embeddings: torch.Tensor  # float32 [B, F, dim]
    domain: torch.Tensor  # int64 [B]
    domain_stats: torch.Tensor  # float32 [B, K]
    dense: torch.Tensor  # float32 [B, D]
