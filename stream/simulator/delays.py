"""Event-time delay between an impression and each of its actions.

Log-normal per task (median ``delay_median_s[task]``, sigma ``delay_sigma``: seconds to minutes),
except a ``late_fraction`` of actions that arrive uniformly between ``late_min_s`` and
``late_max_s`` after the impression, beyond any reasonable join window.
"""

from __future__ import annotations

import math

import numpy as np

from stream.simulator.config import KNOWN_TASKS, SimulatorConfig


class ActionDelayModel:
    """Draws delays (ms, >= 1) for every task and knows P(delay <= window)."""

    def __init__(self, config: SimulatorConfig):
        defaults = SimulatorConfig().delay_median_s
        medians_s = [config.delay_median_s.get(task, defaults[task]) for task in KNOWN_TASKS]
        self._log_median_ms = np.log(np.asarray(medians_s) * 1000.0)
        self._sigma = config.delay_sigma
        self._late_fraction = config.late_fraction
        self._late_min_ms = config.late_min_s * 1000.0
        self._late_max_ms = config.late_max_s * 1000.0

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """Delays int64 [n, T] in ms of event time, one per (impression, task)."""
        shape = (n, len(KNOWN_TASKS))
        regular = np.exp(self._log_median_ms + self._sigma * rng.standard_normal(shape))
        late = rng.uniform(self._late_min_ms, self._late_max_ms, size=shape)
        delays = np.where(rng.random(shape) < self._late_fraction, late, regular)
        return np.maximum(np.ceil(delays), 1).astype(np.int64)

    def probability_within(self, window_ms: int) -> np.ndarray:
        """P(delay <= window_ms) per task, float64 [T]."""
        if window_ms <= 0:
            return np.zeros(len(KNOWN_TASKS))
        z = (math.log(window_ms) - self._log_median_ms) / (self._sigma * math.sqrt(2.0))
        regular = 0.5 * (1.0 + np.vectorize(math.erf)(z))
        span = self._late_max_ms - self._late_min_ms
        if span > 0:
            late = min(max((window_ms - self._late_min_ms) / span, 0.0), 1.0)
        else:
            late = float(window_ms >= self._late_min_ms)
        return (1.0 - self._late_fraction) * regular + self._late_fraction * late
