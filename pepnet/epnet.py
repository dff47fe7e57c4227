"""EPNet: domain-specific personalisation of the shared embedding E (PEPNet, section 3.2)."""

from __future__ import annotations

import torch
from torch import nn

from pepnet.gate_nu import GateNU


class EPNet(nn.Module):
    """``delta_domain = GateNU(E(df) ⊕ stopgrad(E))``; ``O_ep = delta_domain ⊗ E``.

    One gate per element of E. The stop-gradient keeps the gate from moving the embeddings:
    E learns only through the towers, the gate learns only to rescale it per domain.
    """

    def __init__(self, domain_dim: int, embedding_dim: int, hidden_dim: int, gamma: float) -> None:
        super().__init__()
        self.gate_nu = GateNU(domain_dim + embedding_dim, hidden_dim, embedding_dim, gamma)

    def gate(self, domain_side: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """``delta_domain`` ``[B, |E|]`` from domain-side features ``[B, Dd]`` and E ``[B, |E|]``."""
        return self.gate_nu(torch.cat([domain_side, e.detach()], dim=1))

    def forward(self, domain_side: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        """``O_ep = delta_domain ⊗ E``, shape ``[B, |E|]``."""
        return self.gate(domain_side, e) * e
