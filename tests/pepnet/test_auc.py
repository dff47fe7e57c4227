"""AUC (with ties), GAUC grouped by user, log loss: checked against brute-force pair counting."""

from __future__ import annotations

import math

import numpy as np
import pytest

from pepnet.auc import auc, gauc, logloss


def pairwise_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(5))
def test_auc_matches_pair_counting_with_many_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 300)
    scores = rng.integers(0, 6, 300) / 5.0  # heavy ties
    assert math.isclose(auc(labels, scores), pairwise_auc(labels, scores), rel_tol=1e-12)


def test_auc_extremes_and_single_class():
    y = np.array([0, 0, 1, 1])
    assert auc(y, np.array([0.1, 0.2, 0.3, 0.4])) == 1.0
    assert auc(y, np.array([0.4, 0.3, 0.2, 0.1])) == 0.0
    assert auc(y, np.full(4, 0.5)) == 0.5
    assert math.isnan(auc(np.ones(3), np.arange(3.0)))


def test_gauc_is_the_size_weighted_mean_of_per_user_aucs_skipping_one_class_users():
    rng = np.random.default_rng(3)
    users = rng.integers(0, 20, 500)
    labels = rng.integers(0, 2, 500)
    scores = rng.integers(0, 4, 500).astype(float)
    labels[users == 7] = 1  # one-class user: skipped
    expected_num, expected_den = 0.0, 0.0
    for u in np.unique(users):
        sel = users == u
        if labels[sel].min() == labels[sel].max():
            continue
        expected_num += sel.sum() * pairwise_auc(labels[sel], scores[sel])
        expected_den += sel.sum()
    assert math.isclose(gauc(labels, scores, users), expected_num / expected_den, rel_tol=1e-12)


def test_gauc_without_any_two_class_user_is_nan():
    assert math.isnan(gauc(np.array([1, 0]), np.array([0.2, 0.1]), np.array([1, 2])))


def test_logloss():
    assert math.isclose(logloss(np.array([1, 0]), np.array([0.5, 0.5])), math.log(2))
    assert logloss(np.array([1, 0]), np.array([1.0, 0.0])) < 1e-6
