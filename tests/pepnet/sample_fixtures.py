"""Synthetic labelled samples with a learnable rule, for batching and training-step tests."""

from __future__ import annotations

import numpy as np

from pepnet.schema import FeatureSchema
from stream.events.formats import Impression, JoinInfo, LabelledSample


def synthetic_samples(schema: FeatureSchema, n: int, seed: int = 0, start: int = 0) -> list[LabelledSample]:
    """``n`` samples: users 0..49, items 0..199; task t is positive iff (item + t * domain) is even,
    flipped with probability 0.1; the last task is unobserved for every third sample."""
    rng = np.random.default_rng(seed)
    tasks = schema.task_names
    out = []
    for i in range(start, start + n):
        user, item, domain = int(rng.integers(50)), int(rng.integers(200)), int(rng.integers(len(schema.domains)))
        labels = {}
        for t, task in enumerate(tasks):
            if t == len(tasks) - 1 and i % 3 == 0:
                continue
            positive = (item + t * domain) % 2 == 0
            labels[task] = int(positive != (rng.random() < 0.1))
        impression = Impression(
            impression_id=f"imp{i}",
            user_id=user,
            item_id=item,
            author_id=item // 10,
            domain=schema.domains[domain],
            event_time_ms=1_700_000_000_000 + i * 10,
            sparse={"tag": [item % 7, "t" + str(item % 5)], "hour": int(rng.integers(24))},
            dense={"duration": float(rng.exponential(10.0))},
        )
        out.append(LabelledSample(f"s{i}", impression, labels, JoinInfo(window_ms=60_000)))
    return out
