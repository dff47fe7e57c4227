"""SampleBatcher: keys per slot, masks for missing values and unobserved tasks, clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from embedding_store.keys import PADDING_KEY, feature_keys, string_value_id
from pepnet.schema import DenseFeature, FeatureSchema, SparseFeature, TaskSpec
from stream.events.batching import SampleBatcher
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
