"""Configuration of the global shared embedding table (YAML section ``embedding_store``)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class TableConfig:
    """Every knob of :class:`embedding_store.table.EmbeddingTable`.

    Units: bytes for sizes, milliseconds of *event time* for ages, passes for export cadence.
    Feature score (PaddlePaddle-accessor style), applied per row:
    ``score <- score_decay * score`` once per pass (``end_pass``) and
    ``score += show_weight * shows + positive_weight * positives`` per ``record_feedback``.
    """

    dim: int = 16  # embedding width; the paper uses 40
    budget_bytes: int = 64 * 1024 * 1024  # weights + optimizer state + metadata + index + filter + log
    high_watermark: float = 0.95  # end_pass evicts when used bytes exceed this fraction of the budget...
    low_watermark: float = 0.85  # ...down to this fraction, lowest scores first
    score_decay: float = 0.98  # multiplies every score once per pass
    show_weight: float = 0.1  # score added per show (one per looked-up occurrence in record_feedback)
    positive_weight: float = 1.0  # score added per positive label
    initial_score: float = 0.0  # score of a newly admitted row
    admission_min_count: int = 1  # a new key gets a row on its k-th sighting (1 = at once)
    admission_probability: float = 1.0  # then is admitted with this probability per batch it appears in
    admission_filter_bytes: int = 0  # counting filter size when admission_min_count > 1 (0 = budget / 32)
    admission_filter_halving_passes: int = 1  # halve every filter counter every N passes (0 = never)
    feature_limits: dict[str, int] = field(default_factory=dict)  # feature name -> max rows
    features: list[str] = field(default_factory=list)  # names known up front (others register on sight)
    ttl_ms: int = 0  # delete rows unseen for this much event time (0 = never)
    min_updates: int = 0  # delete rows with fewer gradient updates than this...
    min_updates_grace_ms: int = 0  # ...once they are older than this (event time)
    time_resolution_ms: int = 1000  # last-seen/creation times are stored as uint32 ticks of this size
    learning_rate: float = 0.05  # sparse AdaGrad step
    initial_accumulator: float = 3.0  # Paddle's g0: step = lr * g * sqrt(g0 / (g0 + g2sum))
    row_wise_adagrad: bool = True  # one accumulator per row (mean g^2) instead of one per element
    init_range: float = 0.01  # new rows are uniform in [-init_range, init_range], derived from key+seed
    default_value: float = 0.0  # value of the shared vector read by unknown / unadmitted keys
    index_load_factor: float = 0.5  # live rows per index bucket at full capacity
    deletion_log_fraction: float = 0.25  # deleted-key log size as a fraction of capacity
    snapshot_every_passes: int = 10  # export a full snapshot every K passes, deltas in between
    keep_snapshots: int = 2  # export() prunes files older than the newest K snapshots
    seed: int = 0

    def __post_init__(self) -> None:
        _positive_int("dim", self.dim)
        _positive_int("budget_bytes", self.budget_bytes)
        if not 0.0 < self.low_watermark < self.high_watermark <= 1.0:
            raise ValueError(
                f"high_watermark must satisfy 0 < low_watermark < high_watermark <= 1, "
                f"got low {self.low_watermark}, high {self.high_watermark}"
            )
        if not 0.0 < self.score_decay <= 1.0:
            raise ValueError(f"score_decay must be in (0, 1], got {self.score_decay}")
        for name in ("show_weight", "positive_weight", "initial_score", "init_range"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        _positive_int("admission_min_count", self.admission_min_count)
        if not 0.0 < self.admission_probability <= 1.0:
            raise ValueError(f"admission_probability must be in (0, 1], got {self.admission_probability}")
        if self.admission_filter_bytes != 0 and self.admission_filter_bytes < 64:
            raise ValueError(f"admission_filter_bytes must be 0 (auto) or >= 64, got {self.admission_filter_bytes}")
        _non_negative_int("admission_filter_halving_passes", self.admission_filter_halving_passes)
        for name, limit in self.feature_limits.items():
            if not isinstance(limit, int) or limit < 0:
                raise ValueError(f"feature_limits.{name} must be an int >= 0 (max rows), got {limit!r}")
        if len(set(self.features)) != len(self.features):
            raise ValueError(f"features must not repeat a name, got {self.features}")
        _non_negative_int("ttl_ms", self.ttl_ms)
        _non_negative_int("min_updates", self.min_updates)
        if self.min_updates > 65535:
            raise ValueError(f"min_updates must be <= 65535 (uint16 counter), got {self.min_updates}")
        _non_negative_int("min_updates_grace_ms", self.min_updates_grace_ms)
        _positive_int("time_resolution_ms", self.time_resolution_ms)
        if not (math.isfinite(self.learning_rate) and self.learning_rate > 0.0):
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate}")
        if not (math.isfinite(self.initial_accumulator) and self.initial_accumulator > 0.0):
            raise ValueError(f"initial_accumulator must be > 0, got {self.initial_accumulator}")
        if not math.isfinite(self.default_value):
            raise ValueError(f"default_value must be finite, got {self.default_value}")
        if not 0.05 <= self.index_load_factor <= 0.7:
            raise ValueError(f"index_load_factor must be in [0.05, 0.7], got {self.index_load_factor}")
        if not 0.0 < self.deletion_log_fraction <= 1.0:
            raise ValueError(f"deletion_log_fraction must be in (0, 1], got {self.deletion_log_fraction}")
        _positive_int("snapshot_every_passes", self.snapshot_every_passes)
        _positive_int("keep_snapshots", self.keep_snapshots)
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {self.seed!r}")


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"{name} must be an int > 0, got {value!r}")


def _non_negative_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be an int >= 0, got {value!r}")
