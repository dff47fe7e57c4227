"""PPNet: per-user/item/author gates on every layer of every task tower (PEPNet, section 3.3)."""

from __future__ import annotations

import torch
from torch import nn

from pepnet.gate_nu import GateNU


class PPNet(nn.Module):
    """For each tower layer l: ``delta_task^l = GateNU_l(E(u) ⊕ E(i) ⊕ E(a) ⊕ stopgrad(O_ep))``.

    Each GateNU outputs ``h_l × T`` values, split into T task gates of width ``h_l`` (the
    width of layer l's *input*), which the towers multiply into their hidden state before
    layer l's linear map. The prior (id embeddings) is not detached: the paper lets the
    personalisation gates train the id embeddings; O_ep is detached so the gates cannot
    distort the shared representation.
    """

    def __init__(
        self, prior_dim: int, input_dim: int, layer_widths: list[int], num_tasks: int, hidden_dim: int, gamma: float
    ) -> None:
        super().__init__()
        self.num_tasks = num_tasks
        self.layer_widths = list(layer_widths)
        self.gate_nus = nn.ModuleList(
            GateNU(prior_dim + input_dim, hidden_dim, width * num_tasks, gamma) for width in layer_widths
        )

    def forward(self, prior: torch.Tensor, o_ep: torch.Tensor) -> list[torch.Tensor]:
        """Task gates per layer, each ``[T, B, h_l]``, for prior ``[B, P]`` and O_ep ``[B, |E|]``."""
        x = torch.cat([prior, o_ep.detach()], dim=1)
        batch = x.shape[0]
        return [
            gate_nu(x).view(batch, self.num_tasks, width).transpose(0, 1)
            for gate_nu, width in zip(self.gate_nus, self.layer_widths, strict=True)
        ]
