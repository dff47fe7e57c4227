"""Scaled-down flood (the full 10M-ID run is benchmarks/embedding_store_flood.py)."""

from benchmarks.embedding_store_flood import FloodSpec, run_flood


def test_scaled_flood_stays_within_budget_and_keeps_the_hottest_ids():
    spec = FloodSpec().scaled(0.02)  # ~200K distinct IDs into a 1.3 MiB budget, 80 passes
    result = run_flood(spec)
    assert result.distinct_ids > 190_000
    assert result.max_bytes_used <= result.budget_bytes
    assert result.rss_growth_bytes <= result.rss_limit_bytes
    assert result.hot_ids > 1000 and result.hot_missing == 0
    assert result.evictions["budget"] > 10 * result.final_rows  # the budget held against the flood
    assert result.rejections["count"] > 0  # one-shot IDs were kept out by admission
