"""Prometheus metrics of ``pepnet serve``: requests, latency, the pass served and how it follows training."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import partial

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.registry import CollectorRegistry

# Seconds; a batch-1 request takes about a millisecond here, a batch of 1024 tens of ms.
REQUEST_BUCKETS_S = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
UPDATE_BUCKETS_S = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0)
UPDATE_FAILURE_REASONS = ("damaged", "missing", "outside_model_dir", "unreadable")


class ServingMetrics:
    """Metrics of one serving process.

    Exposed series:
        pepnet_serve_request_seconds: histogram of request handling time (parse, validate, score).
        pepnet_serve_requests_total{status}: requests by HTTP status code.
        pepnet_serve_scored_impressions_total: impressions scored.
        pepnet_serve_pass: index of the pass being served.
        pepnet_serve_pass_age_seconds: seconds since the served pass was exported (computed at scrape).
        pepnet_serve_update_seconds{kind}: time to apply a new pass (kind: delta = rows applied in place,
            rebuild = the model reloaded from the snapshot chain).
        pepnet_serve_rows_applied_total{change}: embedding rows applied by deltas (upserted, deleted).
        pepnet_serve_update_failures_total{reason}: new passes that could not be applied (the previous
            pass kept serving): damaged, missing, outside_model_dir, unreadable.
    """

    def __init__(self, registry: CollectorRegistry, clock: Callable[[], float] = time.time) -> None:
        """``clock`` returns Unix seconds (tests pass a fake one)."""
        self._clock = clock
        self._exported_at = math.nan
        gauge = partial(Gauge, registry=registry)
        counter = partial(Counter, registry=registry)
        self.request_seconds = Histogram(
            "pepnet_serve_request_seconds",
            "Time to handle a scoring request: parse, validate, score.",
            buckets=REQUEST_BUCKETS_S,
            registry=registry,
        )
        self.requests = counter("pepnet_serve_requests", "Scoring requests by HTTP status code.", ["status"])
        self.scored = counter("pepnet_serve_scored_impressions", "Impressions scored.")
        self.pass_index = gauge("pepnet_serve_pass", "Index of the pass being served.")
        self.pass_age = gauge("pepnet_serve_pass_age_seconds", "Seconds since the served pass was exported.")
        self.pass_age.set_function(lambda: self._clock() - self._exported_at)
        self.update_seconds = Histogram(
            "pepnet_serve_update_seconds",
            "Time to apply a new pass: delta (rows in place) or rebuild (reload from the snapshot chain).",
            ["kind"],
            buckets=UPDATE_BUCKETS_S,
            registry=registry,
        )
        self.rows_applied = counter(
            "pepnet_serve_rows_applied", "Embedding rows applied from deltas, by change.", ["change"]
        )
        self.update_failures = counter(
            "pepnet_serve_update_failures", "New passes that could not be applied, by reason.", ["reason"]
        )
        for reason in UPDATE_FAILURE_REASONS:
            self.update_failures.labels(reason)
        for change in ("upserted", "deleted"):
            self.rows_applied.labels(change)

    def serving(self, pass_index: int, exported_at: float) -> None:
        """The served pass changed to ``pass_index``, exported at Unix time ``exported_at``."""
        self.pass_index.set(pass_index)
        self._exported_at = exported_at

    def updated(self, kind: str, seconds: float, upserted: int = 0, deleted: int = 0) -> None:
        """A new pass was applied (``kind`` delta or rebuild) in ``seconds``."""
        self.update_seconds.labels(kind).observe(seconds)
        self.rows_applied.labels("upserted").inc(upserted)
        self.rows_applied.labels("deleted").inc(deleted)

    def request(self, status: int, seconds: float, impressions: int = 0) -> None:
        """One request answered with ``status`` after ``seconds``, having scored ``impressions``."""
        self.requests.labels(str(status)).inc()
        self.request_seconds.observe(seconds)
        self.scored.inc(impressions)
