"""Ranking and calibration metrics on numpy arrays: AUC, GAUC grouped by user, log loss.

AUC is the Mann-Whitney statistic with average ranks, so tied scores count one half.
"""

from __future__ import annotations

import numpy as np


def _average_ranks(sorted_scores: np.ndarray) -> np.ndarray:
    """1-based ranks of already sorted scores, ties sharing the mean of their ranks."""
    n = sorted_scores.shape[0]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    ends = np.r_[starts[1:], n]
    group_rank = (starts + 1 + ends) / 2.0  # mean of ranks starts+1 .. ends
    return np.repeat(group_rank, ends - starts)


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    positives = int(labels.sum())
    negatives = labels.shape[0] - positives
    if positives == 0 or negatives == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = _average_ranks(scores[order])
    positive_rank_sum = ranks[labels[order]].sum()
    return float((positive_rank_sum - positives * (positives + 1) / 2.0) / (positives * negatives))


def gauc(labels: np.ndarray, scores: np.ndarray, groups: np.ndarray) -> float:
    """Group AUC: per-group AUC averaged with weights = group size, over groups with both classes.

    ``groups`` is the user id of each sample. NaN when no group has both classes.
    """
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    groups = np.asarray(groups).ravel()
    if labels.shape[0] == 0:
        return float("nan")
    _, group = np.unique(groups, return_inverse=True)
    order = np.lexsort((scores, group))
    g, s, y = group[order], scores[order], labels[order]
    n = g.shape[0]
    # ranks within each group, ties (same group and same score) averaged
    new_tie = np.r_[True, (g[1:] != g[:-1]) | (s[1:] != s[:-1])]
    tie_starts = np.flatnonzero(new_tie)
    tie_ends = np.r_[tie_starts[1:], n]
    group_first = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    first_of_sample = np.repeat(group_first, np.diff(np.r_[group_first, n]))
    tie_rank = (tie_starts + 1 + tie_ends) / 2.0 - first_of_sample[tie_starts]
    ranks = np.repeat(tie_rank, tie_ends - tie_starts)
    size = np.bincount(g)
    pos = np.bincount(g, weights=y).astype(np.float64)
    neg = size - pos
    rank_sum = np.bincount(g, weights=np.where(y, ranks, 0.0))
    valid = (pos > 0) & (neg > 0)
    if not valid.any():
        return float("nan")
    per_group = (rank_sum[valid] - pos[valid] * (pos[valid] + 1) / 2.0) / (pos[valid] * neg[valid])
    return float(np.average(per_group, weights=size[valid]))


def logloss(labels: np.ndarray, probabilities: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy (natural log); NaN for no samples."""
    terms = _logloss_terms(labels, probabilities, eps)
    return float(terms.mean()) if terms.shape[0] else float("nan")


def logloss_stderr(labels: np.ndarray, probabilities: np.ndarray, eps: float = 1e-7) -> float:
    """Standard error of :func:`logloss` (sample standard deviation / sqrt(n)); NaN below 2 samples."""
    terms = _logloss_terms(labels, probabilities, eps)
    n = terms.shape[0]
    return float(terms.std(ddof=1) / np.sqrt(n)) if n >= 2 else float("nan")


def _logloss_terms(labels: np.ndarray, probabilities: np.ndarray, eps: float) -> np.ndarray:
    labels = np.asarray(labels, dtype=np.float64).ravel()
    p = np.clip(np.asarray(probabilities, dtype=np.float64).ravel(), eps, 1 - eps)
    return -(labels * np.log(p) + (1 - labels) * np.log(1 - p))
