import numpy as np

from embedding_store.index import TOMBSTONE, OpenAddressingIndex


def _index(capacity: int, n_buckets: int) -> tuple[OpenAddressingIndex, np.ndarray]:
    row_keys = np.zeros(capacity + 2, dtype=np.uint64)
    return OpenAddressingIndex(n_buckets, row_keys, capacity, max_fill=0.75), row_keys


def test_insert_find_remove_with_collisions_and_duplicates_in_the_query():
    index, row_keys = _index(300, 400)
    rng = np.random.default_rng(1)
    keys = np.unique(rng.integers(1, 2**64 - 1, size=300, dtype=np.uint64))
    slots = np.arange(keys.size, dtype=np.int64)
    row_keys[slots] = keys
    index.insert(keys, slots)
    query = np.concatenate([keys, keys[:10], np.array([0, 12345], dtype=np.uint64)])
    found = index.find(query)
    assert (found[: keys.size] == slots).all()
    assert (found[keys.size : keys.size + 10] == slots[:10]).all()
    assert found[-2] == -1  # padding key
    assert found[-1] == -1 or row_keys[found[-1]] == 12345
    removed = slots[::3]
    index.remove(removed)
    row_keys[removed] = 0
    found = index.find(keys)
    assert (found[::3] == -1).all()
    kept = np.ones(keys.size, dtype=bool)
    kept[::3] = False
    assert (found[kept] == slots[kept]).all()
    assert index.tombstones == removed.size and (index.buckets == TOMBSTONE).sum() == removed.size


def test_rebuild_drops_tombstones_and_keeps_every_live_key():
    index, row_keys = _index(200, 256)
    keys = np.arange(1, 193, dtype=np.uint64) * np.uint64(2654435761)
    slots = np.arange(keys.size, dtype=np.int64)
    row_keys[slots] = keys
    index.insert(keys, slots)
    index.remove(slots[:100])
    row_keys[:100] = 0
    # Reinserting 100 keys would pass max_fill with tombstones: insert rebuilds first.
    new_keys = np.arange(1000, 1100, dtype=np.uint64) * np.uint64(40503)
    row_keys[:100] = new_keys
    index.insert(new_keys, slots[:100])
    assert index.tombstones == 0
    assert (index.find(new_keys) == slots[:100]).all()
    assert (index.find(keys[100:]) == slots[100:]).all()
    assert (index.find(keys[:100]) == -1).all()
