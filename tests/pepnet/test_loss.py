"""The masked, weighted multi-task loss."""

from __future__ import annotations

import math

import torch

from pepnet.loss import masked_bce_per_task, multitask_loss


def test_masked_labels_contribute_nothing_to_loss_or_gradient():
    torch.manual_seed(0)
    logits = torch.randn(8, 3, requires_grad=True)
    labels = torch.randint(0, 2, (8, 3)).float()
    mask = torch.rand(8, 3) > 0.4
    mask[0, 0] = False
    other = labels.clone()
    other[~mask] = 1.0 - other[~mask]  # change every masked label...
    nan_labels = labels.clone()
    nan_labels[~mask] = float("nan")  # ...or make it garbage
    weights = torch.ones(3)
    losses = []
    grads = []
    for y in (labels, other, nan_labels):
        loss, _ = multitask_loss(logits, y, mask, weights)
        (grad,) = torch.autograd.grad(loss, logits)
        losses.append(float(loss.detach()))
        grads.append(grad)
    assert losses[0] == losses[1] == losses[2]
    assert torch.equal(grads[0], grads[1]) and torch.equal(grads[0], grads[2])
    assert float(grads[0][~mask].abs().sum()) == 0.0
    assert float(grads[0][mask].abs().min()) > 0.0


def test_per_task_loss_is_the_mean_over_observed_samples_and_zero_when_unobserved():
    logits = torch.zeros(4, 2)
    labels = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0], [0.0, 1.0]])
    mask = torch.tensor([[True, False], [True, False], [False, False], [False, False]])
    per_task = masked_bce_per_task(logits, labels, mask)
    assert math.isclose(float(per_task[0]), math.log(2), rel_tol=1e-6)
    assert float(per_task[1]) == 0.0


def test_task_weights_scale_their_term_of_the_sum():
    torch.manual_seed(1)
    logits, labels = torch.randn(16, 2), torch.randint(0, 2, (16, 2)).float()
    mask = torch.ones(16, 2, dtype=torch.bool)
    total, per_task = multitask_loss(logits, labels, mask, torch.tensor([1.0, 3.0]))
    assert math.isclose(float(total), float(per_task[0] + 3 * per_task[1]), rel_tol=1e-6)
