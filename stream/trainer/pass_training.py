"""Validation and training of one closed pass, on one process or as one rank of N.

First every mini-batch of the pass is scored before anything is trained (progressive
validation), then trained in order. With N ranks, mini-batches are those of the pass's global
order (``GlobalPass``); each rank scores and trains its rows of each, the predictions are put back
into the global order, and the per-task loss is summed over ranks, so every rank computes the
metrics one process would.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pepnet.batch import SampleBatch
from stream.trainer.data_parallel import LocalSteps
from stream.trainer.global_pass import GlobalPass
from stream.trainer.progressive_validation import ProgressiveMetrics, progressive_metrics_of
from stream.trainer.rank_group import RankGroup

_SCORE_BATCHES = 4  # validation scores mini-batches of this many training batches at once


@dataclass
class TrainedPass:
    """Progressive metrics of the pass (all ranks' samples) and its mean training loss per task."""

    validation: ProgressiveMetrics
    loss: dict[str, float]


def train_pass(
    steps: LocalSteps, batch: SampleBatch, view: GlobalPass, batch_size: int, tasks: list[str], domains: list[str],
    group: RankGroup,
) -> TrainedPass:  # fmt: skip
    """Score, then train ``batch`` (this rank's rows of the pass ``view``) in mini-batches of ``batch_size``."""
    size = _SCORE_BATCHES * batch_size
    scored = [steps.score(batch.slice(*view.local_rows(i, size))) for i in range(view.batches(size))]
    local = np.concatenate(scored) if scored else np.zeros((0, len(tasks)), dtype=np.float32)
    probabilities = view.gather(local, group)
    validation = progressive_metrics_of(view.labels, view.label_mask, view.domain, probabilities, tasks, domains)
    loss_sum = np.zeros(len(tasks))
    observed = np.zeros(len(tasks))
    for i in range(view.batches(batch_size)):
        part = batch.slice(*view.local_rows(i, batch_size))
        result = steps.train(part, view, view.global_rows(i, batch_size))
        if result is None:
            continue
        counts = part.label_mask.sum(axis=0)
        loss_sum += np.nan_to_num(np.array([result.task_loss[t] for t in tasks])) * counts
        observed += counts
    if group.distributed:
        total = group.sum(np.concatenate([loss_sum, observed]))
        loss_sum, observed = total[: len(tasks)], total[len(tasks) :]
    loss = {t: float(loss_sum[k] / observed[k]) if observed[k] else float("nan") for k, t in enumerate(tasks)}
    return TrainedPass(validation, loss)
