"""The AUC noise scale: Hanley-McNeil against the spread of AUCs actually measured on samples."""

from __future__ import annotations

import math

import numpy as np
import pytest

from monitoring.significance import auc_stderr
from pepnet.auc import auc


@pytest.mark.parametrize("positives", [30, 300])
def test_auc_stderr_matches_the_spread_of_measured_aucs(positives: int) -> None:
    rng = np.random.default_rng(positives)
    negatives = 3000
    # Normal scores one standard deviation apart: AUC = Phi(1 / sqrt(2)) ~ 0.760.
    measured = []
    for _ in range(400):
        scores = np.r_[rng.normal(1.0, 1.0, positives), rng.normal(0.0, 1.0, negatives)]
        labels = np.r_[np.ones(positives), np.zeros(negatives)]
        measured.append(auc(labels, scores))
    expected = auc_stderr(float(np.mean(measured)), positives, negatives)
    assert float(np.std(measured)) == pytest.approx(expected, rel=0.2)


def test_auc_stderr_is_undefined_without_both_classes() -> None:
    assert math.isnan(auc_stderr(0.7, 0, 100))
    assert math.isnan(auc_stderr(math.nan, 10, 100))
    assert auc_stderr(0.7, 50, 20000) > 4 * auc_stderr(0.7, 1000, 20000)
