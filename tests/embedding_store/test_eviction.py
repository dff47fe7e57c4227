import numpy as np
import pytest

from embedding_store import EmbeddingTable, feature_keys
from embedding_store.eviction import lowest_score_rows
from tests.embedding_store.table_fixtures import small_config


@pytest.mark.parametrize("n", [10, 1000, 300_000])
@pytest.mark.parametrize("ties", [False, True])
def test_lowest_score_rows_matches_a_full_sort(n, ties):
    rng = np.random.default_rng(n)
    score = (rng.integers(0, 7, n) if ties else rng.random(n)).astype(np.float32)
    score[rng.random(n) < 0.2] = np.inf  # free rows are never chosen
    finite = int(np.isfinite(score).sum())
    for count in (0, 1, finite // 3, finite):
        chosen = lowest_score_rows(score, count)
        assert chosen.shape[0] == count and np.unique(chosen).shape[0] == count
        if count:
            kept = np.setdiff1d(np.arange(n), chosen)
            assert score[chosen].max() <= score[kept].min()
            assert np.isfinite(score[chosen]).all()


def test_lowest_score_rows_when_the_sample_misses_the_threshold():
    score = np.ones(200_000, np.float32)
    score[::1000] = 0.0  # the strided sample sees only the zeros
    chosen = lowest_score_rows(score, 500)
    assert (score[chosen] <= 1).all() and chosen.shape[0] == 500
    assert set(np.flatnonzero(score == 0)) <= set(chosen)


def _hot_and_cold(table, hot_keys, cold_keys, t):
    hot = table.lookup(hot_keys, t)
    table.record_feedback(np.repeat(hot, 5), np.ones(hot.size * 5))
    table.lookup(cold_keys, t)


def test_budget_eviction_goes_from_high_to_low_watermark_and_keeps_high_scores():
    config = small_config(budget_bytes=64 * 1024, high_watermark=0.9, low_watermark=0.6)
    table = EmbeddingTable(config)
    hot_keys = feature_keys("item_id", np.arange(1, 51))
    cold_keys = feature_keys("item_id", np.arange(1000, 1000 + table.capacity - 50))
    _hot_and_cold(table, hot_keys, cold_keys, 1)
    assert table.stats().bytes_used > 0.9 * config.budget_bytes
    report = table.end_pass(0, 2)
    assert report.bytes_used <= 0.6 * config.budget_bytes
    assert table.layout.used_bytes(len(table) + 1) > 0.6 * config.budget_bytes  # no more than needed
    assert report.evictions["budget"] == report.rows_before - report.rows_after > 0
    assert (table.lookup(hot_keys, 3, train=False) >= 0).all()
    assert table.stats().evictions["budget"] == report.evictions["budget"]
    # Under the high watermark nothing goes.
    assert table.end_pass(1, 4).evictions["budget"] == 0


def test_feature_limit_evicts_that_features_lowest_scores():
    config = small_config(budget_bytes=1 << 20, feature_limits={"tag": 10})
    table = EmbeddingTable(config)
    tags = table.lookup(feature_keys("tag", np.arange(1, 31)), 1)
    table.record_feedback(tags[:10], np.ones(10))  # the first ten are kept
    items = table.lookup(feature_keys("item_id", np.arange(1, 31)), 1)
    report = table.end_pass(0, 2)
    assert report.evictions["feature_limit"] == 20
    assert table.stats().rows_per_feature["tag"] == 10
    assert (table.lookup(feature_keys("tag", np.arange(1, 11)), 3, train=False) == tags[:10]).all()
    assert (table.lookup(feature_keys("item_id", np.arange(1, 31)), 3, train=False) == items).all()


def test_ttl_deletes_rows_unseen_for_the_ttl_in_event_time(item_keys):
    table = EmbeddingTable(small_config(ttl_ms=100))
    table.lookup(item_keys[:10], 1000)
    table.lookup(item_keys[:5], 1050)
    report = table.end_pass(0, 1101)  # keys 5..9 last seen at 1000 < 1101 - 100
    assert report.evictions["ttl"] == 5
    assert (table.lookup(item_keys[:5], 1101, train=False) >= 0).all()
    assert (table.lookup(item_keys[5:10], 1101, train=False) == -1).all()
    assert table.end_pass(1, 1150).evictions["ttl"] == 0


def test_min_updates_deletes_rows_past_grace_with_too_few_updates(item_keys):
    table = EmbeddingTable(small_config(min_updates=2, min_updates_grace_ms=500))
    slots = table.lookup(item_keys[:6], 1000)
    table.apply_gradients(np.repeat(slots[:2], 1), np.ones((2, 4), np.float32))
    table.apply_gradients(slots[:2], np.ones((2, 4), np.float32))  # two updates for the first two
    table.apply_gradients(slots[2:4], np.ones((2, 4), np.float32))  # one update for the next two
    young = table.lookup(item_keys[6:8], 1400)
    assert table.end_pass(0, 1499).evictions["min_updates"] == 0  # nobody past the grace age yet
    report = table.end_pass(1, 1500)
    assert report.evictions["min_updates"] == 4
    assert (table.lookup(item_keys[:2], 1500, train=False) == slots[:2]).all()
    assert (table.lookup(item_keys[6:8], 1500, train=False) == young).all()


def test_score_decays_each_pass_and_adds_shows_and_positives(item_keys):
    table = EmbeddingTable(small_config(score_decay=0.5, show_weight=0.1, positive_weight=1.0))
    slots = table.lookup(item_keys[:2], 1)
    table.record_feedback(np.array([slots[0], slots[0], slots[1]]), np.array([1, 0, 0]))
    table.end_pass(0, 2)
    rows = table.live_rows()
    by_key = dict(zip(rows["keys"].tolist(), rows["score"].tolist(), strict=True))
    assert by_key[int(item_keys[0])] == pytest.approx(0.5 * 1.2)
    assert by_key[int(item_keys[1])] == pytest.approx(0.5 * 0.1)


def test_full_table_mid_pass_evicts_only_rows_untouched_this_pass():
    table = EmbeddingTable(small_config(high_watermark=0.9, low_watermark=0.5))
    capacity = table.capacity
    old = feature_keys("item_id", np.arange(1, capacity + 1))
    old_slots = table.lookup(old, 1)
    table.record_feedback(old_slots[:10], np.ones(10))  # ten high scores among the old rows
    table.end_pass(0, 2)  # down to the low watermark
    survivors = table.lookup(old, 3, train=False)
    kept = old[survivors >= 0]
    in_use = table.lookup(kept[-5:], 3)  # touched this pass: protected until the pass ends
    new = feature_keys("tag", np.arange(1, capacity))
    new_slots = table.lookup(new, 4)
    assert (new_slots >= 0).sum() > 0
    assert (table.lookup(kept[-5:], 4, train=False) == in_use).all()
    assert (table.lookup(old[:10], 4, train=False) >= 0).all()  # the high scores stay
    stats = table.stats()
    assert stats.evictions["budget"] > capacity - len(kept)  # rows went mid-pass too
    assert stats.rejections["full"] > 0  # every row touched this pass: the rest waits
