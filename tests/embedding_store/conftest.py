import numpy as np
import pytest

from embedding_store import feature_keys


@pytest.fixture
def item_keys():
    """1000 distinct keys of feature item_id."""
    return feature_keys("item_id", np.arange(1, 1001, dtype=np.int64))
