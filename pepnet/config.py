"""Configuration of the dense model and its optimiser (YAML section ``model``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Architecture = Literal["pepnet", "shared_bottom", "mmoe", "epnet_only", "ppnet_only"]


@dataclass
class ModelConfig:
    """Which multi-task network to train and its sizes; dense optimiser settings."""

    architecture: Architecture = "pepnet"
    gamma: float = 2.0
    tower_hidden: list[int] = field(default_factory=lambda: [128, 64])
    gate_hidden: int = 64
    dense_lr: float = 1e-3
    preset: Literal["cold-start", "paper-online"] = "cold-start"
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.gamma > 0:
            raise ValueError(f"gamma must be > 0, got {self.gamma}")
        if not self.tower_hidden or any(h <= 0 for h in self.tower_hidden):
            raise ValueError(f"tower_hidden must be a non-empty list of positive sizes, got {self.tower_hidden}")
        if self.gate_hidden <= 0:
            raise ValueError(f"gate_hidden must be > 0, got {self.gate_hidden}")
        if not self.dense_lr > 0:
            raise ValueError(f"dense_lr must be > 0, got {self.dense_lr}")
