import numpy as np

from embedding_store import EmbeddingTable
from embedding_store.admission import CountingFilter
from tests.embedding_store.table_fixtures import small_config


def test_key_is_admitted_on_its_kth_sighting(item_keys):
    table = EmbeddingTable(small_config(admission_min_count=3, admission_filter_bytes=1 << 14))
    key = item_keys[:1]
    assert table.lookup(key, 1)[0] == -1
    assert table.lookup(key, 2)[0] == -1
    assert table.lookup(key, 3)[0] >= 0
    stats = table.stats()
    assert stats.admissions == 1 and stats.rejections["count"] == 2


def test_sightings_before_admission_are_credited_to_the_score(item_keys):
    config = small_config(admission_min_count=3, admission_filter_bytes=1 << 14, show_weight=0.1, initial_score=0.5)
    table = EmbeddingTable(config)
    table.lookup(item_keys[:1], 1)
    table.lookup(item_keys[:1], 2)
    table.lookup(item_keys[:1], 3)  # admitted now; two earlier sightings had no row
    assert table.live_rows()["score"][0] == np.float32(0.5) + np.float32(0.1) * np.float32(2)


def test_sightings_within_one_batch_count(item_keys):
    table = EmbeddingTable(small_config(admission_min_count=3, admission_filter_bytes=1 << 14))
    slots = table.lookup(np.repeat(item_keys[:2], [3, 2]), 1)
    assert (slots[:3] >= 0).all() and slots[0] == slots[2]
    assert (slots[3:] == -1).all()


def test_unadmitted_keys_read_the_default_and_get_no_state(item_keys):
    table = EmbeddingTable(small_config(admission_min_count=2, default_value=0.25))
    slots = table.lookup(item_keys[:3], 1)
    assert (table.gather(slots) == np.float32(0.25)).all()
    assert table.apply_gradients(slots, np.ones((3, 4), np.float32)) == 0
    assert len(table) == 0


def test_counting_filter_never_undercounts_and_halving_ages():
    counting = CountingFilter(rows=2, width=64, seed=0)  # tiny: collisions are certain
    keys = np.arange(1, 201, dtype=np.uint64)
    truth = np.zeros(200, dtype=np.int64)
    rng = np.random.default_rng(0)
    for _ in range(5):
        counts = rng.integers(1, 4, size=200)
        truth += counts
        estimate = counting.add(keys, counts)
        assert (estimate >= np.minimum(truth, 255)).all()
    before = counting.counters.copy()
    counting.halve()
    assert np.array_equal(counting.counters, before // 2)


def test_filter_halving_at_pass_end_makes_old_sightings_fade(item_keys):
    table = EmbeddingTable(
        small_config(admission_min_count=2, admission_filter_halving_passes=1, admission_filter_bytes=1 << 14)
    )
    table.lookup(item_keys[:1], 1)
    table.end_pass(0, 2)  # count 1 -> 0
    assert table.lookup(item_keys[:1], 3)[0] == -1
    assert table.lookup(item_keys[:1], 4)[0] >= 0


def test_probability_admission_is_seeded_and_proportional(item_keys):
    def admitted(seed):
        table = EmbeddingTable(small_config(admission_probability=0.25, budget_bytes=1 << 20), seed=seed)
        return table.lookup(item_keys, 1) >= 0

    first, again, other = admitted(1), admitted(1), admitted(2)
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert 0.18 < first.mean() < 0.32


def test_full_table_rejects_new_keys_until_the_pass_ends(item_keys):
    table = EmbeddingTable(small_config())
    capacity = table.capacity
    table.lookup(item_keys[:capacity], 1)
    assert len(table) == capacity
    # The hot key (three sightings) would be chosen first if there were room.
    slots = table.lookup(np.concatenate([item_keys[capacity : capacity + 5], item_keys[capacity : capacity + 1]]), 2)
    assert (slots == -1).all()
    assert table.stats().rejections["full"] == 5
    report = table.end_pass(0, 3)
    assert report.evictions["budget"] > 0
    assert (table.lookup(item_keys[capacity : capacity + 5], 4) >= 0).all()
