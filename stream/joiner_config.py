"""Configuration of the impression/action joiner (YAML section ``joiner``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class JoinerConfig:
    """Event-time join of actions to impressions. Times in ms of event time."""

    window_ms: int = 5 * 60_000
    grace_ms: int = 30_000
    app_id: str = "pepnet-joiner"

    def __post_init__(self) -> None:
        if self.window_ms <= 0:
            raise ValueError(f"window_ms must be > 0, got {self.window_ms}")
        if self.grace_ms < 0:
            raise ValueError(f"grace_ms must be >= 0, got {self.grace_ms}")
