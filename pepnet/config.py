"""Configuration of the dense model and its optimiser (YAML section ``model``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

Architecture = Literal["pepnet", "shared_bottom", "mmoe", "epnet_only", "ppnet_only"]
ARCHITECTURES: tuple[str, ...] = ("pepnet", "shared_bottom", "mmoe", "epnet_only", "ppnet_only")
Preset = Literal["cold-start", "paper-online"]

# Adam learning rate of each preset. cold-start learns from random weights; paper-online is the
# paper's online value (KDD 2023, section 4), meant for fine-tuning an already warm model.
PRESET_DENSE_LR: dict[str, float] = {"cold-start": 3e-3, "paper-online": 5e-6}


@dataclass
class ModelConfig:
    """Which multi-task network to train, its sizes, and the dense (Adam) optimiser settings.

    The embedding width and the sparse AdaGrad settings belong to the table
    (``embedding_store``); everything here is the dense side.
    """

    architecture: Architecture = "pepnet"
    gamma: float = 2.0  # GateNU scale: every gate lies in (0, gamma)
    tower_hidden: list[int] = field(default_factory=lambda: [128, 64])  # per-task tower layers
    gate_hidden: int = 64  # hidden width of every GateNU
    domain_embedding_dim: int = 8  # width of the learned domain-id embedding (domain-side feature)
    bottom_hidden: list[int] = field(default_factory=lambda: [256])  # shared_bottom's shared MLP
    mmoe_experts: int = 4  # number of MMoE experts
    expert_hidden: list[int] = field(default_factory=lambda: [256])  # each MMoE expert's MLP
    use_dense_values: bool = True  # also feed normalised dense values (besides their bucket embeddings)
    domain_side_to_towers: bool = True  # PEPNet, EPNet-only: towers read O_ep ⊕ E(df), not O_ep alone
    task_weights: dict[str, float] = field(default_factory=dict)  # task -> loss weight (overrides schema)
    preset: Preset = "cold-start"
    dense_lr: float | None = None  # Adam learning rate; None = the preset's value
    scale_sparse_grad_by_batch: bool = True  # push d(sum of losses)/dE to the table, as Paddle does
    domain_stats_half_life: int = 200_000  # samples of a domain after which old counts weigh half
    domain_stats_prior_count: float = 100.0  # pseudo-samples at the global rate in each domain's rate
    num_threads: int = 0  # torch intra-op threads set by entry points (0 = torch's default)
    bf16_autocast: bool = False  # dense network in bfloat16 (CPU autocast); loss, optimizers and table in fp32
    seed: int = 0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.gamma) and self.gamma > 0):
            raise ValueError(f"gamma must be > 0, got {self.gamma}")
        for name in ("tower_hidden", "bottom_hidden", "expert_hidden"):
            sizes = getattr(self, name)
            if not sizes or any(not isinstance(h, int) or h <= 0 for h in sizes):
                raise ValueError(f"{name} must be a non-empty list of positive sizes, got {sizes}")
        for name in ("gate_hidden", "domain_embedding_dim", "mmoe_experts", "domain_stats_half_life"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        for task, weight in self.task_weights.items():
            if not (math.isfinite(weight) and weight >= 0):
                raise ValueError(f"task_weights must map task names to weights >= 0, got {task}: {weight}")
        if self.dense_lr is not None and not (math.isfinite(self.dense_lr) and self.dense_lr > 0):
            raise ValueError(f"dense_lr must be > 0 (or null for the preset's value), got {self.dense_lr}")
        if not (math.isfinite(self.domain_stats_prior_count) and self.domain_stats_prior_count > 0):
            raise ValueError(f"domain_stats_prior_count must be > 0, got {self.domain_stats_prior_count}")
        if self.num_threads < 0:
            raise ValueError(f"num_threads must be >= 0 (0 = torch default), got {self.num_threads}")

    @property
    def effective_dense_lr(self) -> float:
        """The Adam learning rate in use: ``dense_lr`` if set, else the preset's."""
        return self.dense_lr if self.dense_lr is not None else PRESET_DENSE_LR[self.preset]
