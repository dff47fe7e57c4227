"""How much a per-pass metric can be trusted: the noise of an AUC measured on few positives."""

from __future__ import annotations

import math

# A (task, domain) cell is drawn in the report only with at least this many positives, as
# `pepnet evaluate` counts a cell only from 1,000 positives: below that its AUC is mostly noise.
MIN_POSITIVES = 1000


def auc_stderr(auc: float, positives: int, negatives: int) -> float:
    """Standard error of an AUC over ``positives`` and ``negatives`` (Hanley & McNeil, Radiology 1982).

    It grows as the rarer class shrinks: with 50 positives an AUC of 0.7 is +-0.04 from noise
    alone, with 1,000 positives +-0.009. NaN when the AUC is undefined.
    """
    if positives <= 0 or negatives <= 0 or not math.isfinite(auc):
        return math.nan
    q1, q2 = auc / (2 - auc), 2 * auc * auc / (1 + auc)
    variance = (auc * (1 - auc) + (positives - 1) * (q1 - auc * auc) + (negatives - 1) * (q2 - auc * auc)) / (
        positives * negatives
    )
    return math.sqrt(max(variance, 0.0))
