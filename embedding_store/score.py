"""Feature score in the spirit of PaddlePaddle's accessor: a decayed count of shows and positives.

``score <- score_decay * score`` once per pass, and ``score += show_weight + positive_weight * y``
for every looked-up occurrence with label ``y`` (``record_feedback``). A new row starts at
``initial_score``, plus ``show_weight`` per sighting that the admission filter counted before the
row existed (so an ID that keeps coming back is not ranked like a one-shot one). With the defaults
(decay 0.98, show 0.1, positive 1.0) an ID shown 10 times a pass with no positive holds ~50, one
that stops appearing loses 2% a pass, and a positive weighs as much as ten shows.
"""

from __future__ import annotations

import numpy as np


def add_feedback(
    score: np.ndarray, slots: np.ndarray, positives: np.ndarray, show_weight: float, positive_weight: float
) -> None:
    """Add one show (and its positive) per occurrence in ``slots``; -1 slots are skipped."""
    known = slots >= 0
    increments = np.float32(show_weight) + np.float32(positive_weight) * positives[known].astype(np.float32)
    np.add.at(score, slots[known], increments)


def decay_scores(score: np.ndarray, decay: float) -> None:
    """Multiply every score by ``decay`` in place (free rows hold +inf and stay there)."""
    if decay != 1.0:
        score *= np.float32(decay)
