"""Domain statistics for EPNet: a running positive rate per task in each domain.

The trainer reads the statistics for a batch *before* training on it and updates them only
after the batch was scored and trained, so a sample's own labels never reach its features.
"""

from __future__ import annotations

import numpy as np


class DomainStatistics:
    """Exponentially decayed counts of observed samples and positives per (domain, task).

    A domain's rate is shrunk towards the global rate with ``prior_count`` pseudo-samples so
    that a rarely seen domain starts at the average; features are the rates as logits.
    ``half_life`` is in samples of the domain itself: its counts halve every ``half_life`` of them.
    """

    def __init__(self, num_domains: int, num_tasks: int, half_life: int, prior_count: float) -> None:
        if half_life <= 0:
            raise ValueError(f"half_life must be > 0, got {half_life}")
        if not prior_count > 0:
            raise ValueError(f"prior_count must be > 0, got {prior_count}")
        self.observed = np.zeros((num_domains, num_tasks), dtype=np.float64)
        self.positives = np.zeros((num_domains, num_tasks), dtype=np.float64)
        self.half_life = half_life
        self.prior_count = prior_count

    def rates(self) -> np.ndarray:
        """Positive rate ``[domains, tasks]`` (shrunk towards the global rate; 0.5 before any data)."""
        global_rate = (self.positives.sum(0) + 0.5) / (self.observed.sum(0) + 1.0)
        return (self.positives + self.prior_count * global_rate) / (self.observed + self.prior_count)

    def features(self, domain: np.ndarray) -> np.ndarray:
        """float32 ``[B, tasks]``: logit of each task's rate in each sample's domain."""
        rates = np.clip(self.rates(), 1e-4, 1 - 1e-4)
        return np.log(rates / (1 - rates)).astype(np.float32)[domain]

    def update(self, domain: np.ndarray, labels: np.ndarray, label_mask: np.ndarray) -> None:
        """Fold in a batch that has been scored: ``domain [B]``, ``labels``/``label_mask [B, T]``."""
        counts = np.bincount(domain, minlength=self.observed.shape[0])[:, None]
        decay = np.power(0.5, counts / self.half_life)  # a domain's clock advances with its own traffic
        observed = np.zeros_like(self.observed)
        positives = np.zeros_like(self.positives)
        np.add.at(observed, domain, label_mask.astype(np.float64))
        np.add.at(positives, domain, np.where(label_mask, labels, 0.0).astype(np.float64))
        self.observed = self.observed * decay + observed
        self.positives = self.positives * decay + positives

    def state(self) -> dict[str, np.ndarray]:
        """Arrays to checkpoint (npz-safe)."""
        return {"observed": self.observed.copy(), "positives": self.positives.copy()}

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Restore arrays written by :meth:`state`; ValueError when their shape does not fit."""
        for name in ("observed", "positives"):
            if state[name].shape != self.observed.shape:
                raise ValueError(f"{name} has shape {state[name].shape}, expected {self.observed.shape}")
        self.observed = np.array(state["observed"], dtype=np.float64)
        self.positives = np.array(state["positives"], dtype=np.float64)
