"""Turn labelled samples into a :class:`pepnet.batch.SampleBatch` (flat numpy arrays).

Raw feature values become embedding-table keys here: integers directly, strings through
``string_value_id``, dense values through their bucket index. A missing value, the padding of
a multi-valued feature and a task absent from ``labels`` are all masked, never guessed.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np

from embedding_store.keys import PADDING_KEY, feature_keys, string_value_id
from pepnet.batch import SampleBatch
from pepnet.schema import ID_FEATURES, FeatureSchema
from stream.events.formats import LabelledSample, SparseValue


class SampleBatcher:
    """Builds ``SampleBatch``es for one schema; key columns follow ``schema.slots()``."""

    def __init__(self, schema: FeatureSchema) -> None:
        self.schema = schema
        self.task_index = {name: i for i, name in enumerate(schema.task_names)}
        self.domain_index = {name: i for i, name in enumerate(schema.domains)}

    def build(self, samples: Sequence[LabelledSample]) -> SampleBatch:
        """One batch holding ``samples`` in order; raises ValueError naming a bad field."""
        if not samples:
            raise ValueError("samples must hold at least one sample")
        schema = self.schema
        n = len(samples)
        impressions = [s.impression for s in samples]
        keys = np.full((n, schema.num_key_columns), PADDING_KEY, dtype=np.uint64)
        key_mask = np.zeros((n, schema.num_key_columns), dtype=bool)
        for slot in schema.slots()[: len(ID_FEATURES)]:  # the id features, always present
            ids = np.fromiter((getattr(imp, slot.name) for imp in impressions), dtype=np.int64, count=n)
            keys[:, slot.first_column] = feature_keys(slot.name, ids)
            key_mask[:, slot.first_column] = True
        slots = {slot.name: slot for slot in schema.slots()}
        for feature in schema.sparse:
            slot = slots[feature.name]
            column = [imp.sparse.get(feature.name) for imp in impressions]
            values, mask = _sparse_values(feature.name, column, feature.max_values)
            cols = slice(slot.first_column, slot.first_column + slot.width)
            keys[:, cols] = np.where(mask, feature_keys(feature.name, values), np.uint64(PADDING_KEY))
            key_mask[:, cols] = mask
        dense = np.zeros((n, len(schema.dense)), dtype=np.float32)
        for j, feature in enumerate(schema.dense):
            raw = np.array([imp.dense.get(feature.name, np.nan) for imp in impressions], dtype=np.float64)
            present = np.isfinite(raw)
            column = slots[feature.name].first_column
            buckets = feature.bucket(np.where(present, raw, 0.0))
            keys[:, column] = np.where(present, feature_keys(feature.name, buckets), np.uint64(PADDING_KEY))
            key_mask[:, column] = present
            dense[:, j] = np.where(present, feature.normalise(np.where(present, raw, 0.0)), 0.0)
        labels, label_mask = self._labels(samples)
        return SampleBatch(
            keys=keys,
            key_mask=key_mask,
            domain=np.fromiter((self._domain(imp.domain) for imp in impressions), dtype=np.int64, count=n),
            dense=dense,
            labels=labels,
            label_mask=label_mask,
            user_id=np.fromiter((imp.user_id for imp in impressions), dtype=np.int64, count=n),
            event_time_ms=np.fromiter((imp.event_time_ms for imp in impressions), dtype=np.int64, count=n),
            sample_id=[s.sample_id for s in samples],
        )

    def _domain(self, name: str) -> int:
        index = self.domain_index.get(name)
        if index is None:
            raise ValueError(f"impression.domain: unknown domain {name!r}; schema.domains is {self.schema.domains}")
        return index

    def _labels(self, samples: Sequence[LabelledSample]) -> tuple[np.ndarray, np.ndarray]:
        n, t = len(samples), len(self.task_index)
        labels = np.zeros((n, t), dtype=np.float32)
        label_mask = np.zeros((n, t), dtype=bool)
        for row, sample in enumerate(samples):
            for task, value in sample.labels.items():
                column = self.task_index.get(task)
                if column is None:
                    raise ValueError(f"labels.{task}: unknown task; schema.tasks is {list(self.task_index)}")
                if value not in (0, 1):
                    raise ValueError(f"labels.{task}: must be 0 or 1, got {value!r}")
                labels[row, column] = value
                label_mask[row, column] = True
        return labels, label_mask


def _sparse_values(name: str, column: list[SparseValue | None], width: int) -> tuple[np.ndarray, np.ndarray]:
    """int64 value ids ``[B, width]`` and their mask for one sparse feature's raw values."""
    if width == 1 and all(type(v) is int for v in column):  # fast path: one integer per sample
        return np.array(column, dtype=np.int64)[:, None], np.ones((len(column), 1), dtype=bool)
    if width == 1 and all(type(v) is int or type(v) is str for v in column):  # one int or string each
        ids = [v if type(v) is int else _string_id(v) for v in column]
        return np.array(ids, dtype=np.int64)[:, None], np.ones((len(column), 1), dtype=bool)
    values = np.zeros((len(column), width), dtype=np.int64)
    mask = np.zeros((len(column), width), dtype=bool)
    for row, raw in enumerate(column):
        items = raw if isinstance(raw, list) else ([] if raw is None else [raw])
        for j, item in enumerate(items[:width]):  # values beyond max_values are dropped
            values[row, j] = _value_id(name, item)
            mask[row, j] = True
    return values, mask


# Categorical strings repeat from sample to sample: their blake2b ids are memoised (bounded).
_string_id = functools.lru_cache(maxsize=1 << 16)(string_value_id)


def _value_id(name: str, value: object) -> int:
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        return _string_id(value)
    raise ValueError(f"sparse.{name}: values must be int, str or a list of them, got {type(value).__name__}")
