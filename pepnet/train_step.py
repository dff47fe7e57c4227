"""One training step with two optimisers: sparse AdaGrad in the table, Adam on the dense model.

``score`` is the progressive-validation half: it predicts a batch with ``train=False`` lookups
(no row created) before the batch is trained on. Domain statistics are read before a batch is
scored or trained and updated only after it was trained, so no sample sees its own labels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from embedding_store.interface import EmbeddingRows
from pepnet.batch import EmbeddedBatch, SampleBatch
from pepnet.config import ModelConfig
from pepnet.domain_stats import DomainStatistics
from pepnet.embedding_lookup import EmbeddingLookup, PooledLookup
from pepnet.loss import multitask_loss
from pepnet.schema import FeatureSchema


@dataclass
class StepResult:
    """Losses of one step (mean BCE over observed samples, per task) and the pre-update predictions."""

    loss: float  # weighted sum over tasks
    task_loss: dict[str, float]
    probabilities: np.ndarray  # float32 [B, T], predicted before this batch's update


class TrainStep:
    """Trains ``model`` and the rows of ``table`` on SampleBatches; see module docstring."""

    def __init__(self, model: nn.Module, table: EmbeddingRows, schema: FeatureSchema, config: ModelConfig) -> None:
        self.model = model
        self.table = table
        self.schema = schema
        self.config = config
        self.lookup = EmbeddingLookup(table, schema)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=config.effective_dense_lr, foreach=True)
        self.domain_stats = DomainStatistics(
            len(schema.domains), len(schema.tasks), config.domain_stats_half_life, config.domain_stats_prior_count
        )
        weights = [config.task_weights.get(t.name, t.weight) for t in schema.tasks]
        self.task_weights = torch.tensor(weights, dtype=torch.float32)

    def _embedded(self, batch: SampleBatch, pooled: PooledLookup) -> EmbeddedBatch:
        return EmbeddedBatch(
            embeddings=pooled.embeddings,
            domain=torch.from_numpy(batch.domain),
            domain_stats=torch.from_numpy(self.domain_stats.features(batch.domain)),
            dense=torch.from_numpy(batch.dense),
        )

    def step(self, batch: SampleBatch) -> StepResult:
        """Forward, masked multi-task loss, backward, AdaGrad on touched rows, Adam on the network."""
        self.model.train()
        pooled = self.lookup.pool(batch, train=True)
        logits = self._forward(batch, pooled)
        labels = torch.from_numpy(batch.labels)
        mask = torch.from_numpy(batch.label_mask)
        loss, per_task = multitask_loss(logits, labels, mask, self.task_weights)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        grads = pooled.rows.grad
        if grads is not None:
            if self.config.scale_sparse_grad_by_batch:
                grads = grads * len(batch)  # per-sample gradient sums, as Paddle's sparse tables expect
            self.table.apply_gradients(pooled.slots, grads.numpy())
        positives = np.where(batch.label_mask, batch.labels, 0.0).sum(1)
        self.table.record_feedback(pooled.occurrence_slots, positives[pooled.occurrence_sample])
        self.domain_stats.update(batch.domain, batch.labels, batch.label_mask)
        return StepResult(
            loss=float(loss.detach()),
            task_loss={t: float(v) for t, v in zip(self.schema.task_names, per_task.tolist(), strict=True)},
            probabilities=torch.sigmoid(logits.detach()).numpy(),
        )

    @torch.no_grad()
    def score(self, batch: SampleBatch) -> np.ndarray:
        """Predicted probabilities float32 ``[B, T]``; touches neither the table nor the statistics."""
        self.model.eval()
        pooled = self.lookup.pool(batch, train=False)
        return torch.sigmoid(self._forward(batch, pooled)).numpy()

    def _forward(self, batch: SampleBatch, pooled: PooledLookup) -> torch.Tensor:
        """float32 logits ``[B, T]``; the network runs in bfloat16 when ``config.bf16_autocast``."""
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.config.bf16_autocast):
            logits = self.model(self._embedded(batch, pooled))
        return logits.float()
