import subprocess
import sys

import numpy as np
import pytest

from embedding_store.keys import PADDING_KEY, feature_keys, feature_tag, key_tags, string_value_id


def test_keys_are_stable_across_processes():
    code = (
        "import numpy as np; from embedding_store.keys import feature_keys, string_value_id;"
        "print(int(feature_keys('item_id', np.array([7]))[0]), string_value_id('tab1'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == [str(int(feature_keys("item_id", np.array([7]))[0])), str(string_value_id("tab1"))]


def test_keys_carry_the_feature_tag_and_differ_between_features():
    values = np.arange(1000, dtype=np.int64)
    items = feature_keys("item_id", values)
    users = feature_keys("user_id", values)
    assert items.dtype == np.uint64 and items.shape == values.shape
    assert (key_tags(items) == feature_tag("item_id")).all()
    assert (key_tags(users) == feature_tag("user_id")).all()
    assert np.intersect1d(items, users).size == 0
    assert np.unique(items).size == values.size


def test_keys_keep_shape_and_never_equal_padding():
    values = np.array([[0, -1], [2**62, -(2**63)]], dtype=np.int64)
    keys = feature_keys("tag", values)
    assert keys.shape == (2, 2)
    assert (keys != PADDING_KEY).all()


def test_string_value_id_is_a_signed_int64():
    ids = {string_value_id(f"value-{i}") for i in range(1000)}
    assert len(ids) == 1000
    assert all(-(2**63) <= v < 2**63 for v in ids)


@pytest.mark.parametrize("bad", [np.array([1.5]), np.array(["a"])])
def test_non_integer_values_are_refused(bad):
    with pytest.raises(ValueError, match="values of feature 'item_id' must be integers"):
        feature_keys("item_id", bad)


def test_empty_feature_name_is_refused():
    with pytest.raises(ValueError, match="feature must be a non-empty string"):
        feature_keys("", np.array([1]))
