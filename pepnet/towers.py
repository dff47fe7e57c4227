"""Task towers: T independent MLPs evaluated together as batched matrix products."""

from __future__ import annotations

import math

import torch
from torch import nn


class TaskTowers(nn.Module):
    """T towers ``in_dim -> hidden... -> 1`` with ReLU hidden layers; returns logits ``[B, T]``.

    Weights of layer l are one ``[T, h_l, h_{l+1}]`` tensor so that all towers run as one
    ``baddbmm``. Optional gates (PPNet) multiply each tower's hidden state *before* layer l's
    linear map, as in the paper. The sigmoid is applied by the loss / the caller.
    """

    def __init__(self, in_dim: int, hidden: list[int], num_tasks: int) -> None:
        super().__init__()
        self.num_tasks = num_tasks
        self.widths = [in_dim, *hidden, 1]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip(self.widths[:-1], self.widths[1:], strict=True):
            bound = 1.0 / math.sqrt(fan_in)  # the bound nn.Linear uses
            self.weights.append(nn.Parameter(torch.empty(num_tasks, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(num_tasks, 1, fan_out).uniform_(-bound, bound)))

    @property
    def layer_input_widths(self) -> list[int]:
        """Width of the input of every linear map (what a PPNet gate of that layer must cover)."""
        return self.widths[:-1]

    def forward(self, x: torch.Tensor, gates: list[torch.Tensor] | None = None) -> torch.Tensor:
        """Logits ``[B, T]`` for a shared input ``[B, in]`` or per-task inputs ``[T, B, in]``."""
        h = x if x.dim() == 3 else x.unsqueeze(0).expand(self.num_tasks, -1, -1)
        last = len(self.weights) - 1
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            if gates is not None:
                h = h * gates[layer]
            h = torch.baddbmm(bias, h, weight)
            if layer < last:
                h = torch.relu(h)
        return h.squeeze(-1).transpose(0, 1)
