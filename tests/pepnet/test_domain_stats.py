"""Running per-domain positive rates: shrinkage, decay, and no look at unseen labels."""

from __future__ import annotations

import numpy as np
import pytest

from pepnet.domain_stats import DomainStatistics


def test_rates_follow_each_domains_labels_and_start_at_the_global_rate():
    stats = DomainStatistics(num_domains=3, num_tasks=2, half_life=10**9, prior_count=10.0)
    assert np.allclose(stats.rates(), 0.5)
    domain = np.array([0] * 1000 + [1] * 1000)
    labels = np.zeros((2000, 2), dtype=np.float32)
    labels[:100, 0] = 1  # domain 0: 10% on task 0
    labels[1000:1500, 0] = 1  # domain 1: 50% on task 0
    stats.update(domain, labels, np.ones_like(labels, dtype=bool))
    rates = stats.rates()
    assert rates[0, 0] == pytest.approx(0.1, abs=0.01)
    assert rates[1, 0] == pytest.approx(0.5, abs=0.01)
    assert rates[2, 0] == pytest.approx(0.3, abs=0.001)  # unseen domain: the global rate
    features = stats.features(np.array([0, 1, 2]))
    assert features.shape == (3, 2) and features.dtype == np.float32
    assert features[0, 0] < features[2, 0] < features[1, 0]


def test_masked_labels_are_not_counted_and_old_counts_decay():
    stats = DomainStatistics(num_domains=1, num_tasks=1, half_life=100, prior_count=1.0)
    ones = np.ones((100, 1), dtype=np.float32)
    stats.update(np.zeros(100, dtype=np.int64), ones, np.zeros((100, 1), dtype=bool))
    assert stats.observed.sum() == 0.0
    stats.update(np.zeros(100, dtype=np.int64), ones, np.ones((100, 1), dtype=bool))
    stats.update(np.zeros(100, dtype=np.int64), ones * 0, np.ones((100, 1), dtype=bool))
    assert stats.observed[0, 0] == pytest.approx(150.0)  # 100 halved, plus 100
    assert stats.positives[0, 0] == pytest.approx(50.0)


def test_state_round_trip_and_shape_check():
    stats = DomainStatistics(2, 2, 100, 1.0)
    stats.update(np.array([0, 1]), np.ones((2, 2), dtype=np.float32), np.ones((2, 2), dtype=bool))
    other = DomainStatistics(2, 2, 100, 1.0)
    other.load_state(stats.state())
    assert np.array_equal(other.rates(), stats.rates())
    with pytest.raises(ValueError, match="observed"):
        DomainStatistics(3, 2, 100, 1.0).load_state(stats.state())
