"""Training steps of N trainer processes: data parallel dense network, one sharded embedding table.

Each rank runs the unchanged ``pepnet.train_step.TrainStep`` on its rows of a global mini-batch
(``GlobalPass``), over a ``ShardedEmbeddingTable`` and a network wrapped in
``DistributedDataParallel``. Three things make the N steps one step of the global batch:

* Loss weights: rank r's task weights are scaled by ``O_t^r / O_t`` (its share of the batch's
  observed labels of task t) times ``B / B_r`` (global over local batch size, the factor that
  ``TrainStep`` applies to sparse gradients), and its dense gradient by ``B_r / B``; so the
  sparse gradients that reach the owners and the sum of the dense gradients are the global
  batch's, up to float rounding.
* Dense gradients: a DDP communication hook all_gathers every rank's gradient bucket and adds the
  parts in rank order on every rank: the same bits on every rank and after every restart
  (an all-reduce's summation order may depend on the bucket layout, which DDP rebuilds).
* Domain statistics: every rank folds in the whole global mini-batch (its domains and labels are
  known from the ``GlobalPass``), not only its own rows, so the statistics stay identical.
* Event time: a rank's rows are stamped with the latest event time of the global mini-batch (the
  time the table's lookups see, as in one process), so rows get the same creation and last-seen ticks.

A rank without rows in a mini-batch steps on a padding row whose keys and labels are all masked:
it takes part in every collective and contributes nothing.
"""

from __future__ import annotations

import dataclasses
import inspect
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

from pepnet.batch import SampleBatch
from pepnet.domain_stats import DomainStatistics
from pepnet.train_step import StepResult, TrainStep
from stream.trainer.batch_rows import padding_batch
from stream.trainer.global_pass import GlobalPass
from stream.trainer.rank_group import RankGroup
from stream.trainer.training_model import TrainingModel

_BUCKET_MB = 256  # one gradient bucket for the whole network: one all_gather per step
# The networks' only buffers are constants: no broadcast before every forward (scoring stays local).
# torch >= 2.10 names the option forward_sync_buffers and deprecates broadcast_buffers.
_NO_BUFFER_SYNC = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    else {"broadcast_buffers": False}
)


class GlobalBatchStatistics(DomainStatistics):
    """Domain statistics that fold in the global mini-batch set by :meth:`set_batch` instead of the
    rank's own rows handed to :meth:`update` (``TrainStep`` calls ``update`` once per step)."""

    def __init__(self, like: DomainStatistics) -> None:
        super().__init__(like.observed.shape[0], like.observed.shape[1], like.half_life, like.prior_count)
        self.load_state(like.state())
        self._batch: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

    def set_batch(self, domain: np.ndarray, labels: np.ndarray, label_mask: np.ndarray) -> None:
        """The global mini-batch the next :meth:`update` folds in."""
        self._batch = (domain, labels, label_mask)

    def update(self, domain: np.ndarray, labels: np.ndarray, label_mask: np.ndarray) -> None:
        """Fold in the global mini-batch (the rank's own rows are part of it)."""
        if self._batch is None:
            raise RuntimeError("set_batch must name the global mini-batch before each training step")
        batch, self._batch = self._batch, None
        super().update(*batch)


@dataclass
class _HookState:
    world_size: int
    weight: float = 1.0  # this rank's gradient is multiplied by it before the sum


def _sum_in_rank_order(state, bucket):  # noqa: ANN001, ANN201 - DDP checks unpostponed annotations: none at all
    """DDP communication hook (``_HookState``, ``dist.GradBucket`` -> future of the summed bucket):
    the weighted sum of every rank's bucket, added in rank order."""
    local = bucket.buffer() * state.weight
    gathered = torch.empty(state.world_size * local.numel(), dtype=local.dtype)
    future = dist.all_gather_into_tensor(gathered, local, async_op=True).get_future()

    def added(done: torch.futures.Future) -> torch.Tensor:
        done.wait()
        parts = gathered.view(state.world_size, -1)
        total = parts[0].clone()
        for part in parts[1:]:
            total += part
        return total.view_as(local)

    return future.then(added)


class LocalSteps:
    """The steps of a single trainer process: ``TrainStep`` on the pass's own mini-batches."""

    def __init__(self, model: TrainingModel) -> None:
        self.model = model

    def score(self, part: SampleBatch) -> np.ndarray:
        """Predictions ``[B, T]`` of ``part`` before training on it."""
        return self.model.step.score(part)

    def train(self, part: SampleBatch, view: GlobalPass, rows: slice) -> StepResult | None:
        """Train ``part``, the whole mini-batch ``rows`` of the pass."""
        return self.model.step.step(part)


class DataParallelSteps(LocalSteps):
    """The steps of one rank of N: see the module docstring. Wraps ``model`` when created: build it
    before loading a checkpoint's dense state (the optimizer and statistics it restores are these)."""

    def __init__(self, model: TrainingModel, group: RankGroup) -> None:
        super().__init__(model)
        self.hook = _HookState(group.world_size)
        # Bias gradients of shape [T, 1, 1] come with other (equivalent) strides than their bucket
        # views; DDP copies them and warns on every backward. Nothing is wrong: silence that warning.
        warnings.filterwarnings("ignore", message="Grad strides do not match bucket view strides")
        network = DistributedDataParallel(model.network, bucket_cap_mb=_BUCKET_MB, **_NO_BUFFER_SYNC)
        network.register_comm_hook(self.hook, _sum_in_rank_order)
        model.step = TrainStep(network, model.table, model.schema, model.model_config)
        self.statistics = GlobalBatchStatistics(model.step.domain_stats)
        model.step.domain_stats = self.statistics
        self.task_weights = model.step.task_weights.clone()
        self.padding = padding_batch(model.schema)

    def score(self, part: SampleBatch) -> np.ndarray:
        """Predictions of ``part`` (possibly no rows: the padding row is scored and dropped)."""
        if len(part) == 0:
            return self.model.step.score(self.padding)[:0]
        return self.model.step.score(part)

    def train(self, part: SampleBatch, view: GlobalPass, rows: slice) -> StepResult | None:
        """One step of the global mini-batch ``rows``, of which ``part`` is this rank's share."""
        step = self.model.step
        size = rows.stop - rows.start
        self.statistics.set_batch(view.domain[rows], view.labels[rows], view.label_mask[rows])
        if len(part) == 0:
            self.hook.weight = 0.0
            step.task_weights = self.task_weights
            step.step(self.padding)
            return None
        # The time of the whole mini-batch (TrainStep's lookups read the batch's latest event time).
        part = dataclasses.replace(part, event_time_ms=np.full(len(part), view.event_time_ms[rows].max()))
        factor = size / len(part) if self.model.model_config.scale_sparse_grad_by_batch else 1.0
        observed = view.label_mask[rows].sum(axis=0)
        share = np.divide(part.label_mask.sum(axis=0), observed, out=np.zeros(observed.shape), where=observed > 0)
        step.task_weights = self.task_weights * torch.from_numpy((share * factor).astype(np.float32))
        self.hook.weight = 1.0 / factor
        return step.step(part)
