"""SampleBatcher: keys per slot, masks for missing values and unobserved tasks, clear errors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from embedding_store.keys import PADDING_KEY, feature_keys, string_value_id
from pepnet.schema import DenseFeature, FeatureSchema, SparseFeature, TaskSpec
from stream.events.batching import SampleBatcher, SparseColumn
from stream.events.formats import Impression, JoinInfo, LabelledSample

SCHEMA = FeatureSchema(
    tasks=[TaskSpec("click"), TaskSpec("like")],
    domains=["a", "b"],
    sparse=[SparseFeature("tag", "item", max_values=3), SparseFeature("kind", "item")],
    dense=[DenseFeature("duration", "item", boundaries=[1.0, 10.0])],
)


def sample(i: int, sparse: dict, dense: dict, labels: dict, domain: str = "b") -> LabelledSample:
    impression = Impression(f"imp{i}", 100 + i, 200 + i, 300 + i, domain, 1_000 + i, sparse, dense)
    return LabelledSample(f"s{i}", impression, labels, JoinInfo(window_ms=1000))


def test_keys_masks_dense_values_and_labels():
    batch = SampleBatcher(SCHEMA).build(
        [
            sample(0, {"tag": [5, "x"], "kind": "long"}, {"duration": 20.0}, {"click": 1, "like": 0}),
            sample(1, {"tag": 7}, {}, {"click": 0}, domain="a"),
        ]
    )
    assert batch.keys.shape == (2, SCHEMA.num_key_columns) and batch.keys.dtype == np.uint64
    assert batch.keys[0, 0] == feature_keys("user_id", np.array([100]))[0]
    assert batch.keys[1, 1] == feature_keys("item_id", np.array([201]))[0]
    assert batch.keys[1, 2] == feature_keys("author_id", np.array([301]))[0]
    assert batch.keys[0, 3] == feature_keys("tag", np.array([5]))[0]
    assert batch.keys[0, 4] == feature_keys("tag", np.array([string_value_id("x")]))[0]
    assert batch.key_mask[0, 3:6].tolist() == [True, True, False]
    assert batch.key_mask[1, 3:6].tolist() == [True, False, False]
    assert batch.keys[1, 4] == PADDING_KEY
    assert batch.keys[0, 6] == feature_keys("kind", np.array([string_value_id("long")]))[0]
    assert not batch.key_mask[1, 6]  # missing sparse value
    assert batch.keys[0, 7] == feature_keys("duration", np.array([2]))[0]  # 20 s is bucket 2
    assert not batch.key_mask[1, 7]  # missing dense value: no bucket key...
    assert batch.dense[:, 0].tolist() == pytest.approx([np.log1p(20.0), 0.0])  # ...and value 0
    assert batch.domain.tolist() == [1, 0]
    assert batch.labels.tolist() == [[1.0, 0.0], [0.0, 0.0]]
    assert batch.label_mask.tolist() == [[True, True], [True, False]]  # absent task = masked
    assert batch.user_id.tolist() == [100, 101] and batch.event_time_ms.tolist() == [1000, 1001]
    assert batch.sample_id == ["s0", "s1"]


def test_values_beyond_max_values_are_dropped_and_ints_and_strings_differ():
    batch = SampleBatcher(SCHEMA).build([sample(0, {"tag": [1, 2, 3, 4], "kind": 5}, {}, {})])
    assert batch.key_mask[0, 3:6].all()
    assert batch.keys[0, 5] == feature_keys("tag", np.array([3]))[0]
    other = SampleBatcher(SCHEMA).build([sample(0, {"kind": "5"}, {}, {})])
    assert batch.keys[0, 6] != other.keys[0, 6]


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"domain": "zzz"}, "impression.domain"),
        ({"labels": {"share": 1}}, "labels.share"),
        ({"labels": {"click": 2}}, "labels.click"),
        ({"sparse": {"kind": 1.5}}, "sparse.kind"),
    ],
)
def test_bad_input_names_the_field(bad, message):
    kwargs = {"sparse": {}, "dense": {}, "labels": {}, **bad}
    with pytest.raises(ValueError, match=message):
        SampleBatcher(SCHEMA).build([sample(0, **kwargs)])


def test_empty_input_is_refused():
    with pytest.raises(ValueError, match="samples"):
        SampleBatcher(SCHEMA).build([])


def test_columns_make_the_same_batch_as_the_samples_and_missing_columns_are_masked():
    samples = [
        sample(0, {"tag": [5, "x"], "kind": "long"}, {"duration": 20.0}, {"click": 1, "like": 0}),
        sample(1, {"tag": 7}, {}, {"click": 0}, domain="a"),
    ]
    batcher = SampleBatcher(SCHEMA)
    columns = batcher.columns(samples)
    assert columns.sparse["tag"].values.shape == (2, 3) and np.isnan(columns.dense["duration"][1])
    built, from_columns = batcher.build(samples), batcher.from_columns(columns)
    for name in ("keys", "key_mask", "domain", "dense", "labels", "label_mask", "user_id", "event_time_ms"):
        assert np.array_equal(getattr(built, name), getattr(from_columns, name)), name
    narrow = SparseColumn(np.array([[5], [7]]), np.array([[True], [True]]))  # one value of a 3-wide feature
    only_tags = dataclasses.replace(columns, sparse={"tag": narrow}, dense={})
    batch = batcher.from_columns(only_tags)
    assert batch.key_mask[:, 3:].tolist() == [[True, False, False, False, False]] * 2  # the rest is missing
    assert batch.keys[0, 3] == built.keys[0, 3]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"user_id": np.array([1])}, "user_id: expected 2 integers"),
        ({"domain": np.array([0, 2])}, r"domain: positions must be in \[0, 2\)"),
        ({"labels": np.zeros((2, 3), dtype=np.float32)}, r"labels: expected shape \(2, 2\)"),
        ({"dense": {"duration": np.zeros(3)}}, "dense.duration: expected 2 values"),
        ({"sample_id": []}, "sample_id must hold at least one sample"),
    ],
)
def test_columns_of_the_wrong_shape_name_the_field(change, message):
    batcher = SampleBatcher(SCHEMA)
    columns = batcher.columns([sample(0, {}, {}, {}), sample(1, {}, {}, {})])
    with pytest.raises(ValueError, match=message):
        batcher.from_columns(dataclasses.replace(columns, **change))
