"""PEPNet and its ablations (EPNet only, PPNet only), and the factory over all architectures."""

from __future__ import annotations

import torch
from torch import nn

from pepnet.baselines import MMoE, SharedBottom
from pepnet.batch import EmbeddedBatch
from pepnet.config import ModelConfig
from pepnet.epnet import EPNet
from pepnet.model_input import DomainSideInput, InputShape, SharedInput
from pepnet.ppnet import PPNet
from pepnet.towers import TaskTowers


class PEPNet(nn.Module):
    """Parameter and Embedding Personalised Network (Chang et al., KDD 2023).

    ``O_ep = EPNet(E(df), E)``, ``delta^l = PPNet_l(E(u) ⊕ E(i) ⊕ E(a), O_ep)``, and every
    task tower gates its hidden state with ``delta^l`` before layer l. ``use_epnet=False``
    (the PPNet-only ablation) feeds ``E ⊕ E(df)`` to the towers instead of O_ep;
    ``use_ppnet=False`` (the EPNet-only ablation) runs the towers ungated.

    With ``config.domain_side_to_towers`` the towers read ``O_ep ⊕ E(df)`` (and PPNet's gates the
    same, detached), as every other architecture reads E(df) in its input. Without it the domain
    reaches the towers only through the gate that multiplies E, so a sample whose embeddings are
    all zero (only new ids, no side features) gets the same prediction in every domain.
    """

    def __init__(self, shape: InputShape, config: ModelConfig, use_epnet: bool = True, use_ppnet: bool = True) -> None:
        super().__init__()
        self.shared = SharedInput(shape, config.use_dense_values)
        self.domain_side = DomainSideInput(shape, config.domain_embedding_dim)
        if use_epnet:
            self.epnet: EPNet | None = EPNet(
                self.domain_side.out_dim, self.shared.out_dim, config.gate_hidden, config.gamma
            )
        else:
            self.epnet = None
        # Without EPNet the towers read E ⊕ E(df): the domain side is there in any case.
        self.domain_side_to_towers = config.domain_side_to_towers or not use_epnet
        tower_in = self.shared.out_dim + (self.domain_side.out_dim if self.domain_side_to_towers else 0)
        self.towers = TaskTowers(tower_in, config.tower_hidden, shape.num_tasks)
        self.ppnet = (
            PPNet(
                self.shared.prior_dim,
                tower_in,
                self.towers.layer_input_widths,
                shape.num_tasks,
                config.gate_hidden,
                config.gamma,
            )
            if use_ppnet
            else None
        )

    def tower_input(self, batch: EmbeddedBatch) -> torch.Tensor:
        """What the towers (and, detached, PPNet's gates) read: O_ep (or E), ⊕ E(df) when configured."""
        e = self.shared(batch)
        domain_side = self.domain_side(batch)
        o_ep = self.epnet(domain_side, e) if self.epnet is not None else e
        return torch.cat([o_ep, domain_side], dim=1) if self.domain_side_to_towers else o_ep

    def forward(self, batch: EmbeddedBatch) -> torch.Tensor:
        """Logits ``[B, T]``: every task for every sample, whatever its domain."""
        tower_input = self.tower_input(batch)
        gates = self.ppnet(self.shared.prior(batch), tower_input) if self.ppnet is not None else None
        return self.towers(tower_input, gates)


def build_model(config: ModelConfig, shape: InputShape) -> nn.Module:
    """The network named by ``config.architecture``, seeded by ``config.seed``."""
    torch.manual_seed(config.seed)
    match config.architecture:
        case "pepnet":
            return PEPNet(shape, config)
        case "epnet_only":
            return PEPNet(shape, config, use_ppnet=False)
        case "ppnet_only":
            return PEPNet(shape, config, use_epnet=False)
        case "shared_bottom":
            return SharedBottom(shape, config)
        case "mmoe":
            return MMoE(shape, config)
    raise ValueError(
        f"architecture must be one of pepnet, shared_bottom, mmoe, epnet_only, ppnet_only, got {config.architecture!r}"
    )
