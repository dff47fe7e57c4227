"""Which real user sees an impression in a domain: activity-weighted, among the tab's visitors.

Each user visits a tab with the tab's ``active_user_ratio`` (tab_stats.csv), and within a tab users
are drawn by activity (``user_active_degree``) times a log-normal personal intensity.
"""

from __future__ import annotations

import numpy as np

from stream.simulator.population import DomainStats, UserTable

# Relative impression volume of a user by KuaiRand's user_active_degree (unknown values: 0.3).
ACTIVITY_WEIGHT = {
    "full_active": 1.0,
    "high_active": 0.6,
    "middle_active": 0.35,
    "low_active": 0.15,
    "single_low_active": 0.05,
    "2_14_day_new": 0.3,
    "30day_retention": 0.1,
    "day_new": 0.2,
}


class UserSampler:
    """Draws user rows for impressions of given domains."""

    def __init__(self, users: UserTable, domains: DomainStats, rng: np.random.Generator):
        activity = np.asarray([ACTIVITY_WEIGHT.get(str(v), 0.3) for v in users.columns["user_active_degree"]])
        weight = activity * rng.lognormal(0.0, 0.7, size=len(users))
        visits = rng.random((len(users), len(domains.names))) < domains.active_user_ratio[None, :]
        self._cumulative = [np.cumsum(weight * visits[:, d]) for d in range(len(domains.names))]
        for name, cumulative in zip(domains.names, self._cumulative, strict=True):
            if cumulative[-1] <= 0:
                raise ValueError(f"domains: no user visits {name!r}")

    def sample(self, rng: np.random.Generator, domain: np.ndarray) -> np.ndarray:
        """User rows int64 [n] for impressions in ``domain`` (int64 [n])."""
        u = rng.random(domain.shape[0])
        rows = np.empty(domain.shape[0], dtype=np.int64)
        for d, cumulative in enumerate(self._cumulative):
            mask = domain == d
            rows[mask] = np.searchsorted(cumulative, u[mask] * cumulative[-1], side="right")
        return np.minimum(rows, self._cumulative[0].shape[0] - 1)
