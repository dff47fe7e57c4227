"""The feature schema: slot layout, bucketing and validation."""

import numpy as np
import pytest

from pepnet.schema import DenseFeature, FeatureSchema, SparseFeature, TaskSpec


def small_schema() -> FeatureSchema:
    return FeatureSchema(
        tasks=[TaskSpec("click"), TaskSpec("like", weight=2.0)],
        domains=["a", "b"],
        sparse=[SparseFeature("tag", "item", max_values=3), SparseFeature("hour", "context")],
        dense=[DenseFeature("duration", "item", boundaries=[1.0, 10.0])],
    )


def test_slots_put_ids_first_and_give_multi_valued_features_their_width():
    slots = small_schema().slots()
    assert [s.name for s in slots] == ["user_id", "item_id", "author_id", "tag", "hour", "duration"]
    assert [s.first_column for s in slots] == [0, 1, 2, 3, 6, 7]
    assert small_schema().num_key_columns == 8


def test_dense_buckets_and_normalisation():
    f = DenseFeature("duration", boundaries=[1.0, 10.0])
    assert f.bucket(np.array([0.5, 1.0, 5.0, 10.0, 99.0])).tolist() == [0, 1, 1, 2, 2]
    assert f.normalise(np.array([0.0, np.e - 1]))[1] == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: DenseFeature("d", boundaries=[2.0, 1.0]), "strictly increasing"),
        (lambda: SparseFeature("s", max_values=0), "max_values"),
        (lambda: FeatureSchema(tasks=[], domains=["a"]), "tasks"),
        (lambda: FeatureSchema(tasks=[TaskSpec("c")], domains=["a", "a"]), "unique"),
        (lambda: FeatureSchema([TaskSpec("c")], ["a"], [SparseFeature("user_id")]), "unique"),
    ],
)
def test_invalid_schema_is_rejected(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_domain_index():
    schema = small_schema()
    assert schema.domain_index("b") == 1
    with pytest.raises(KeyError):
        schema.domain_index("zzz")
