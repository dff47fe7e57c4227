"""Turn labelled samples, or the same data as columns, into a :class:`pepnet.batch.SampleBatch`.

Raw feature values become embedding-table keys here: integers directly, strings through
``string_value_id``, dense values through their bucket index. A missing value, the padding of
a multi-valued feature and a task absent from ``labels`` are all masked, never guessed.

There is one way to make keys: :meth:`SampleBatcher.from_columns` (arrays in, batch out). The
per-object path :meth:`SampleBatcher.build` first lays the samples out as :class:`SampleColumns`,
so a source that already holds arrays (the simulator) and one that reads JSON produce the very
same batch for the same data.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from embedding_store.keys import PADDING_KEY, feature_keys, string_value_id
from pepnet.batch import SampleBatch
from pepnet.schema import ID_FEATURES, FeatureSchema
from stream.events.formats import LabelledSample, SparseValue


@dataclass
class SparseColumn:
    """One sparse feature of n samples: value ids ``int64 [n, w]`` (``w`` <= the feature's
    ``max_values``) and which of them are present (``bool [n, w]``). A value id is the integer
    value itself, or :func:`string_value_id` of a string value (see :func:`sparse_value_ids`)."""

    values: np.ndarray
    mask: np.ndarray


@dataclass
class SampleColumns:
    """n labelled samples as arrays, the input of :meth:`SampleBatcher.from_columns`.

    ``domain`` holds positions in ``schema.domains``; ``labels``/``label_mask`` are ``[n, T]`` in
    ``schema.tasks`` order. A sparse feature absent from ``sparse`` is missing in every sample; a
    dense value is the raw number (NaN = missing), absent from ``dense`` = missing everywhere.
    """

    user_id: np.ndarray  # int64 [n]
    item_id: np.ndarray  # int64 [n]
    author_id: np.ndarray  # int64 [n]
    domain: np.ndarray  # int64 [n]
    event_time_ms: np.ndarray  # int64 [n]
    labels: np.ndarray  # float32 [n, T], 0/1
    label_mask: np.ndarray  # bool [n, T]
    sample_id: list[str]
    sparse: dict[str, SparseColumn] = field(default_factory=dict)
    dense: dict[str, np.ndarray] = field(default_factory=dict)  # float64 [n]


class SampleBatcher:
    """Builds ``SampleBatch``es for one schema; key columns follow ``schema.slots()``."""

    def __init__(self, schema: FeatureSchema) -> None:
        self.schema = schema
        self.task_index = {name: i for i, name in enumerate(schema.task_names)}
        self.domain_index = {name: i for i, name in enumerate(schema.domains)}
        self._slots = {slot.name: slot for slot in schema.slots()}

    def build(self, samples: Sequence[LabelledSample]) -> SampleBatch:
        """One batch holding ``samples`` in order; raises ValueError naming a bad field."""
        return self.from_columns(self.columns(samples))

    def columns(self, samples: Sequence[LabelledSample]) -> SampleColumns:
        """``samples`` laid out as columns; raises ValueError naming a bad field."""
        if not samples:
            raise ValueError("samples must hold at least one sample")
        n = len(samples)
        impressions = [s.impression for s in samples]
        labels, label_mask = self._labels(samples)

        def ints(name: str) -> np.ndarray:
            return np.fromiter((getattr(imp, name) for imp in impressions), dtype=np.int64, count=n)

        sparse = {}
        for feature in self.schema.sparse:
            raw = [imp.sparse.get(feature.name) for imp in impressions]
            values, mask = sparse_value_ids(feature.name, raw, feature.max_values)
            sparse[feature.name] = SparseColumn(values, mask)
        dense = {
            f.name: np.array([imp.dense.get(f.name, np.nan) for imp in impressions], dtype=np.float64)
            for f in self.schema.dense
        }
        return SampleColumns(
            user_id=ints("user_id"),
            item_id=ints("item_id"),
            author_id=ints("author_id"),
            domain=np.fromiter((self._domain(imp.domain) for imp in impressions), dtype=np.int64, count=n),
            event_time_ms=ints("event_time_ms"),
            labels=labels,
            label_mask=label_mask,
            sample_id=[s.sample_id for s in samples],
            sparse=sparse,
            dense=dense,
        )

    def from_columns(self, columns: SampleColumns) -> SampleBatch:
        """The batch of ``columns`` (arrays in, batch out); ValueError naming a field of the wrong shape."""
        schema = self.schema
        n = _check_columns(columns, len(schema.domains), len(schema.tasks))
        keys = np.full((n, schema.num_key_columns), PADDING_KEY, dtype=np.uint64)
        key_mask = np.zeros((n, schema.num_key_columns), dtype=bool)
        for name, _entity in ID_FEATURES:  # the id features, always present
            column = self._slots[name].first_column
            keys[:, column] = feature_keys(name, getattr(columns, name))
            key_mask[:, column] = True
        for feature in schema.sparse:
            given = columns.sparse.get(feature.name)
            if given is None:
                continue
            slot = self._slots[feature.name]
            width = min(given.values.shape[1], slot.width)  # values beyond max_values are dropped
            if given.values.shape[0] != n or given.mask.shape != given.values.shape:
                raise ValueError(f"sparse.{feature.name}: values and mask must both be [{n}, width]")
            values, mask = given.values[:, :width], given.mask[:, :width]
            cols = slice(slot.first_column, slot.first_column + width)
            keys[:, cols] = np.where(mask, feature_keys(feature.name, values), np.uint64(PADDING_KEY))
            key_mask[:, cols] = mask
        dense = np.zeros((n, len(schema.dense)), dtype=np.float32)
        for j, feature in enumerate(schema.dense):
            raw = columns.dense.get(feature.name)
            if raw is None:
                continue
            raw = np.asarray(raw, dtype=np.float64)
            if raw.shape != (n,):
                raise ValueError(f"dense.{feature.name}: expected {n} values, got shape {raw.shape}")
            present = np.isfinite(raw)
            filled = np.where(present, raw, 0.0)
            column = self._slots[feature.name].first_column
            keys[:, column] = np.where(
                present, feature_keys(feature.name, feature.bucket(filled)), np.uint64(PADDING_KEY)
            )
            key_mask[:, column] = present
            dense[:, j] = np.where(present, feature.normalise(filled), 0.0)
        return SampleBatch(
            keys=keys,
            key_mask=key_mask,
            domain=np.asarray(columns.domain, dtype=np.int64),
            dense=dense,
            labels=np.asarray(columns.labels, dtype=np.float32),
            label_mask=np.asarray(columns.label_mask, dtype=bool),
            user_id=np.asarray(columns.user_id, dtype=np.int64),
            event_time_ms=np.asarray(columns.event_time_ms, dtype=np.int64),
            sample_id=list(columns.sample_id),
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


def _check_columns(columns: SampleColumns, num_domains: int, num_tasks: int) -> int:
    """The row count n of ``columns``; ValueError naming the first field that does not fit."""
    n = len(columns.sample_id)
    if n == 0:
        raise ValueError("sample_id must hold at least one sample")
    for name in ("user_id", "item_id", "author_id", "domain", "event_time_ms"):
        array = np.asarray(getattr(columns, name))
        if array.shape != (n,) or array.dtype.kind not in "iu":
            raise ValueError(f"{name}: expected {n} integers, got shape {array.shape} of {array.dtype}")
    for name in ("labels", "label_mask"):
        if np.shape(getattr(columns, name)) != (n, num_tasks):
            raise ValueError(f"{name}: expected shape ({n}, {num_tasks}), got {np.shape(getattr(columns, name))}")
    domain = np.asarray(columns.domain)
    if domain.min() < 0 or domain.max() >= num_domains:
        raise ValueError(f"domain: positions must be in [0, {num_domains}), got {domain.min()}..{domain.max()}")
    return n


def sparse_value_ids(name: str, column: Sequence[SparseValue | None], width: int) -> tuple[np.ndarray, np.ndarray]:
    """int64 value ids ``[n, width]`` and their mask for one sparse feature's raw values
    (an int, a str, a list of them, or None for missing); values beyond ``width`` are dropped."""
    if width == 1 and all(type(v) is int for v in column):  # fast path: one integer per sample
        return np.array(column, dtype=np.int64).reshape(-1, 1), np.ones((len(column), 1), dtype=bool)
    if width == 1 and all(type(v) is int or type(v) is str for v in column):  # one int or string each
        ids = [v if type(v) is int else _string_id(v) for v in column]
        return np.array(ids, dtype=np.int64).reshape(-1, 1), np.ones((len(column), 1), dtype=bool)
    values = np.zeros((len(column), width), dtype=np.int64)
    mask = np.zeros((len(column), width), dtype=bool)
    for row, raw in enumerate(column):
        items = raw if isinstance(raw, list) else ([] if raw is None else [raw])
        for j, item in enumerate(items[:width]):
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
