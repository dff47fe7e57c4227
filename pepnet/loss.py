"""The multi-task loss: binary cross-entropy per task, masked, weighted and summed over tasks."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def masked_bce_per_task(logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean BCE over the observed samples of each task, ``[T]``; 0 for a task observed nowhere.

    ``logits``, ``labels`` and ``mask`` are ``[B, T]``; masked entries contribute nothing (not
    even to the denominator), whatever their label value.
    """
    observed = mask.to(logits.dtype)
    targets = torch.where(mask, labels.to(logits.dtype), 0.0)  # a masked label may be anything, even NaN
    per_sample = F.binary_cross_entropy_with_logits(logits, targets, reduction="none") * observed
    return per_sample.sum(0) / observed.sum(0).clamp_min(1.0)


def multitask_loss(
    logits: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, task_weights: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(sum_t w_t * BCE_t, per-task BCE [T] detached)``."""
    per_task = masked_bce_per_task(logits, labels, mask)
    return (per_task * task_weights).sum(), per_task.detach()
