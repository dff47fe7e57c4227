"""The paper's Gate Neural Unit: a two-layer MLP whose output is a gate in (0, gamma)."""

from __future__ import annotations

import torch
from torch import nn


class GateNU(nn.Module):
    """``delta = gamma * sigmoid(W2 · relu(W1 · x + b1) + b2)``, so every gate lies in (0, gamma).

    With gamma = 2 a freshly initialised gate is close to 1 (sigmoid(0) = 0.5), so gating starts
    as an identity and can both amplify and suppress.
    """

    def __init__(self, in_dim: int, hidden_dim: int, out_dim: int, gamma: float) -> None:
        super().__init__()
        self.hidden = nn.Linear(in_dim, hidden_dim)
        self.out = nn.Linear(hidden_dim, out_dim)
        self.gamma = gamma

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Gates ``[B, out_dim]`` for inputs ``[B, in_dim]``."""
        return self.gamma * torch.sigmoid(self.out(torch.relu(self.hidden(x))))
