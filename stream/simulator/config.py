"""Configuration of the event simulator (YAML section ``simulator``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SimulatorConfig:
    """Seeded simulated traffic over the real KuaiRand-Pure population; times are event time (ms)."""

    seed: int = 7
    data_dir: str = "data/kuairand-pure"
    start_time_ms: int = 1_700_000_000_000
    impressions_per_second: float = 200.0

    def __post_init__(self) -> None:
        if not self.impressions_per_second > 0:
            raise ValueError(f"impressions_per_second must be > 0, got {self.impressions_per_second}")
