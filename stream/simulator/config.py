"""Configuration of the event simulator (YAML section ``simulator``)."""

from __future__ import annotations

from dataclasses import dataclass, field

# Tasks the hidden ground-truth model knows how to generate (a schema may use any subset).
KNOWN_TASKS: tuple[str, ...] = ("click", "effective_view", "like", "follow", "forward", "hate")


def _default_task_rates() -> dict[str, float]:
    # Traffic-weighted marginal rates; click comes from tab_stats.csv, effective_view is given click.
    return {"effective_view": 0.6, "like": 0.035, "follow": 0.01, "forward": 0.006, "hate": 0.002}


def _default_delay_median_s() -> dict[str, float]:
    return {
        "click": 2.0,
        "effective_view": 25.0,
        "like": 20.0,
        "follow": 35.0,
        "forward": 45.0,
        "hate": 12.0,
    }


@dataclass
class SimulatorConfig:
    """Seeded simulated traffic over the real KuaiRand-Pure population; times are event time (ms).

    Label rates: click per domain follows ``tab_stats.csv``; ``task_rates`` gives the traffic-weighted
    marginal rate of like/follow/forward/hate and the rate of effective_view *given a click*;
    ``domain_rate_spread`` (log-normal sigma) makes those rates differ per domain.
    """

    seed: int = 7
    # Empty: the KuaiRand-Pure copy shipped inside the package (stream/simulator/data/kuairand-pure).
    data_dir: str = ""
    start_time_ms: int = 1_700_000_000_000
    impressions_per_second: float = 200.0
    task_rates: dict[str, float] = field(default_factory=_default_task_rates)
    domain_rate_spread: float = 0.35
    # Std (logits) of the domain-specific user-profile x content-profile interactions (0 = off);
    # see stream/simulator/ground_truth.py.
    domain_interaction_strength: float = 0.8
    # New items (new ids) arriving per 1000 impressions; a share of them come from new authors.
    new_items_per_1k_impressions: float = 1.0
    new_author_fraction: float = 0.3
    # Item popularity decays as (1 + age / popularity_decay_hours) ** -1 (event time).
    popularity_decay_hours: float = 6.0
    # Action delays (event time after the impression): log-normal with this median and sigma...
    delay_median_s: dict[str, float] = field(default_factory=_default_delay_median_s)
    delay_sigma: float = 1.0
    # ...except this fraction, which arrives late_min_s..late_max_s after the impression.
    late_fraction: float = 0.01
    late_min_s: float = 600.0
    late_max_s: float = 3600.0
    # Mean of the exponential log-delivery jitter that makes the stream slightly out of order (ms).
    delivery_jitter_ms: float = 200.0
    # The target rates hold on average over this many impressions from the start (rates drift).
    calibration_horizon_impressions: int = 1_000_000
    # Impressions drawn per vectorised step; new items arrive per chunk, so it is part of the seeded stream.
    chunk_size: int = 4096

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not self.impressions_per_second > 0:
            raise ValueError(f"impressions_per_second must be > 0, got {self.impressions_per_second}")
        if self.start_time_ms < 0:
            raise ValueError(f"start_time_ms must be >= 0 (ms since the epoch), got {self.start_time_ms}")
        for task, rate in self.task_rates.items():
            if task not in KNOWN_TASKS or task == "click":
                raise ValueError(
                    f"task_rates has unknown task {task!r}; expected a subset of {list(KNOWN_TASKS[1:])} "
                    "(click rates come from tab_stats.csv)"
                )
            if not 0 < rate < 1:
                raise ValueError(f"task_rates.{task} must be in (0, 1), got {rate}")
        for task, median in self.delay_median_s.items():
            if task not in KNOWN_TASKS:
                raise ValueError(f"delay_median_s has unknown task {task!r}; expected one of {list(KNOWN_TASKS)}")
            if not median > 0:
                raise ValueError(f"delay_median_s.{task} must be > 0 (seconds), got {median}")
        if not self.domain_rate_spread >= 0:
            raise ValueError(f"domain_rate_spread must be >= 0, got {self.domain_rate_spread}")
        if not 0 <= self.domain_interaction_strength < 10:
            raise ValueError(
                "domain_interaction_strength must be in [0, 10) (std in logits), "
                f"got {self.domain_interaction_strength}"
            )
        if not self.new_items_per_1k_impressions >= 0:
            raise ValueError(f"new_items_per_1k_impressions must be >= 0, got {self.new_items_per_1k_impressions}")
        if not 0 <= self.new_author_fraction <= 1:
            raise ValueError(f"new_author_fraction must be in [0, 1], got {self.new_author_fraction}")
        if not self.popularity_decay_hours > 0:
            raise ValueError(f"popularity_decay_hours must be > 0, got {self.popularity_decay_hours}")
        if not self.delay_sigma > 0:
            raise ValueError(f"delay_sigma must be > 0, got {self.delay_sigma}")
        if not 0 <= self.late_fraction < 1:
            raise ValueError(f"late_fraction must be in [0, 1), got {self.late_fraction}")
        if not 0 < self.late_min_s <= self.late_max_s:
            raise ValueError(
                f"late_min_s must be > 0 and <= late_max_s (seconds), got {self.late_min_s} and {self.late_max_s}"
            )
        if not self.delivery_jitter_ms >= 0:
            raise ValueError(f"delivery_jitter_ms must be >= 0, got {self.delivery_jitter_ms}")
        if self.calibration_horizon_impressions < 1:
            raise ValueError(
                f"calibration_horizon_impressions must be >= 1, got {self.calibration_horizon_impressions}"
            )
        if self.chunk_size < 1:
            raise ValueError(f"chunk_size must be >= 1, got {self.chunk_size}")
