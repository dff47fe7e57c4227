"""Progressive validation: metrics of predictions made on a pass before training on it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from pepnet.auc import auc, logloss, logloss_stderr
from pepnet.batch import SampleBatch


@dataclass
class ProgressiveMetrics:
    """AUC and logloss per task, overall and per domain (NaN where undefined), with the counts
    that say how much they can be trusted: observed labels and positives per task (and domain),
    and the standard error of each task's logloss."""

    auc: dict[str, float] = field(default_factory=dict)
    logloss: dict[str, float] = field(default_factory=dict)
    auc_by_domain: dict[str, dict[str, float]] = field(default_factory=dict)
    logloss_by_domain: dict[str, dict[str, float]] = field(default_factory=dict)
    observed: dict[str, int] = field(default_factory=dict)
    positives: dict[str, int] = field(default_factory=dict)
    positives_by_domain: dict[str, dict[str, int]] = field(default_factory=dict)
    logloss_stderr: dict[str, float] = field(default_factory=dict)


def progressive_metrics(
    batch: SampleBatch, probabilities: np.ndarray, task_names: list[str], domain_names: list[str]
) -> ProgressiveMetrics:
    """Metrics of ``probabilities`` ``[B, T]`` against the batch's observed labels."""
    return progressive_metrics_of(batch.labels, batch.label_mask, batch.domain, probabilities, task_names, domain_names)


def progressive_metrics_of(
    labels: np.ndarray,
    label_mask: np.ndarray,
    sample_domain: np.ndarray,
    probabilities: np.ndarray,
    task_names: list[str],
    domain_names: list[str],
) -> ProgressiveMetrics:
    """Metrics of ``probabilities`` ``[B, T]`` against ``labels`` where ``label_mask`` (both ``[B, T]``),
    per task and per domain (``sample_domain [B]``)."""
    out = ProgressiveMetrics()
    for t, task in enumerate(task_names):
        observed = label_mask[:, t]
        task_labels, scores = labels[observed, t], probabilities[observed, t]
        out.auc[task] = auc(task_labels, scores)
        out.logloss[task] = logloss(task_labels, scores)
        out.logloss_stderr[task] = logloss_stderr(task_labels, scores)
        out.observed[task] = int(observed.sum())
        out.positives[task] = int((task_labels > 0.5).sum())
        domains = sample_domain[observed]
        out.auc_by_domain[task] = {}
        out.logloss_by_domain[task] = {}
        out.positives_by_domain[task] = {}
        for d, domain in enumerate(domain_names):
            in_domain = domains == d
            if not in_domain.any():
                continue
            out.auc_by_domain[task][domain] = auc(task_labels[in_domain], scores[in_domain])
            out.logloss_by_domain[task][domain] = logloss(task_labels[in_domain], scores[in_domain])
            out.positives_by_domain[task][domain] = int((task_labels[in_domain] > 0.5).sum())
    return out
