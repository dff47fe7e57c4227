"""Multi-task baselines on the same input as PEPNet: shared-bottom DNN and MMoE.

Both see E ⊕ E(df) (all embeddings, dense values, domain id embedding and domain statistics),
so they have the same information as PEPNet and differ only in how it is combined.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from pepnet.batch import EmbeddedBatch
from pepnet.config import ModelConfig
from pepnet.model_input import DomainSideInput, InputShape, SharedInput
from pepnet.towers import TaskTowers


def mlp(widths: list[int]) -> nn.Sequential:
    """Linear+ReLU layers ``widths[0] -> widths[1] -> ...`` (ReLU after every layer)."""
    layers: list[nn.Module] = []
    for fan_in, fan_out in zip(widths[:-1], widths[1:], strict=True):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    return nn.Sequential(*layers)


class SharedBottom(nn.Module):
    """A shared MLP over E ⊕ E(df), then one tower per task (Caruana 1997)."""

    def __init__(self, shape: InputShape, config: ModelConfig) -> None:
        super().__init__()
        self.shared = SharedInput(shape, config.use_dense_values)
        self.domain_side = DomainSideInput(shape, config.domain_embedding_dim)
        self.bottom = mlp([self.shared.out_dim + self.domain_side.out_dim, *config.bottom_hidden])
        self.towers = TaskTowers(config.bottom_hidden[-1], config.tower_hidden, shape.num_tasks)

    def forward(self, batch: EmbeddedBatch) -> torch.Tensor:
        """Logits ``[B, T]``."""
        x = torch.cat([self.shared(batch), self.domain_side(batch)], dim=1)
        return self.towers(self.bottom(x))


class MMoE(nn.Module):
    """Multi-gate mixture of experts (Ma et al., KDD 2018): K expert MLPs, a softmax gate per task."""

    def __init__(self, shape: InputShape, config: ModelConfig) -> None:
        super().__init__()
        self.shared = SharedInput(shape, config.use_dense_values)
        self.domain_side = DomainSideInput(shape, config.domain_embedding_dim)
        in_dim = self.shared.out_dim + self.domain_side.out_dim
        self.experts = Experts(in_dim, config.expert_hidden, config.mmoe_experts)
        self.task_gates = nn.Linear(in_dim, shape.num_tasks * config.mmoe_experts)
        self.num_tasks = shape.num_tasks
        self.num_experts = config.mmoe_experts
        self.towers = TaskTowers(config.expert_hidden[-1], config.tower_hidden, shape.num_tasks)

    def forward(self, batch: EmbeddedBatch) -> torch.Tensor:
        """Logits ``[B, T]``."""
        x = torch.cat([self.shared(batch), self.domain_side(batch)], dim=1)
        experts = self.experts(x)  # [K, B, h]
        weights = torch.softmax(self.task_gates(x).view(-1, self.num_tasks, self.num_experts), dim=2)
        mixed = torch.einsum("btk,kbh->tbh", weights, experts)
        return self.towers(mixed)


class Experts(nn.Module):
    """K MLP experts over the same input, run together as batched products; output ``[K, B, h]``."""

    def __init__(self, in_dim: int, hidden: list[int], num_experts: int) -> None:
        super().__init__()
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for fan_in, fan_out in zip([in_dim, *hidden[:-1]], hidden, strict=True):
            bound = 1.0 / math.sqrt(fan_in)
            self.weights.append(nn.Parameter(torch.empty(num_experts, fan_in, fan_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.empty(num_experts, 1, fan_out).uniform_(-bound, bound)))
        self.num_experts = num_experts

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.unsqueeze(0).expand(self.num_experts, -1, -1)
        for weight, bias in zip(self.weights, self.biases, strict=True):
            h = torch.relu(torch.baddbmm(bias, h, weight))
        return h
