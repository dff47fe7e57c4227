"""Configuration of the incremental trainer (YAML section ``trainer``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainerConfig:
    """How samples are cut into passes and trained. Spans are event time (ms)."""

    pass_samples: int = 20_000
    pass_event_time_ms: int = 0
    batch_size: int = 512
    consumer_group: str = "pepnet-trainer"

    def __post_init__(self) -> None:
        if self.pass_samples <= 0:
            raise ValueError(f"pass_samples must be > 0, got {self.pass_samples}")
        if self.pass_event_time_ms < 0:
            raise ValueError(f"pass_event_time_ms must be >= 0 (0 = no time limit), got {self.pass_event_time_ms}")
        if self.batch_size <= 0:
            raise ValueError(f"batch_size must be > 0, got {self.batch_size}")
