"""Prometheus metrics of the trainer: loss and progressive metrics per task, throughput, passes, lag."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from functools import partial

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.registry import CollectorRegistry

from monitoring.consumer_lag import ConsumerLagGauge
from monitoring.run_log import PassRecord
from monitoring.significance import auc_stderr

# A pass's logloss counts as rising when it exceeds the previous pass's by this many standard errors
# of the difference (one-sided, ~0.6% of passes by chance).
RISE_SIGNIFICANCE = 2.5
PASS_DURATION_BUCKETS_S = (1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1800, 3600)


class TrainerMetrics:
    """Metrics of the incremental trainer, refreshed once per pass (plus consumer lag and checkpoints).

    Exposed series (task and domain label values come from the feature schema, so they are bounded):
        pepnet_train_loss{task}: mean training loss of the last pass.
        pepnet_progressive_auc{task}, pepnet_progressive_logloss{task}: progressive validation of the
            last pass, all domains; pepnet_progressive_domain_auc{task,domain} and
            pepnet_progressive_domain_logloss{task,domain} per domain.
        pepnet_progressive_auc_stderr{task}: standard error of that AUC (Hanley-McNeil, from the
            pass's positives and negatives): the noise scale the AUC alert compares drops with.
        pepnet_progressive_positives{task}: positive labels in the last pass.
        pepnet_progressive_logloss_rising_passes{task}: consecutive passes whose progressive logloss
            exceeded the previous pass's by more than RISE_SIGNIFICANCE standard errors of the
            difference (noise alone does that in ~0.6% of passes, three times in a row ~2e-7).
        pepnet_trained_samples_total: samples trained (added when a pass completes).
        pepnet_train_samples_per_second: throughput of the last pass.
        pepnet_pass_index: index of the last completed pass.
        pepnet_pass_duration_seconds: histogram of pass wall-clock durations.
        pepnet_last_pass_completion_timestamp_seconds: Unix time of the last completed pass (before the
            first pass: when the metrics were created, so "no pass for X minutes" counts from start).
        pepnet_last_checkpoint_timestamp_seconds: Unix time of the last checkpoint written (same start rule).
        pepnet_trained_event_time_seconds: largest event time trained so far (Unix seconds).
        pepnet_consumer_lag_messages{topic,partition}: from librdkafka statistics (`update_consumer_lag`).
        pepnet_dropped_duplicate_samples_total: samples dropped because their id was already trained.
        pepnet_invalid_samples_total: messages of the samples topic that are not a sample (skipped).
    """

    def __init__(self, registry: CollectorRegistry, clock: Callable[[], float] = time.time) -> None:
        """`clock` returns Unix seconds; tests pass a fake one to control timestamps."""
        self._clock = clock
        gauge = partial(Gauge, registry=registry)
        counter = partial(Counter, registry=registry)
        self.loss = gauge("pepnet_train_loss", "Mean training loss of the last pass.", ["task"])
        self.logloss_rising_passes = gauge(
            "pepnet_progressive_logloss_rising_passes",
            f"Consecutive passes whose progressive logloss rose by more than {RISE_SIGNIFICANCE:g} standard errors.",
            ["task"],
        )
        self.auc_stderr = gauge(
            "pepnet_progressive_auc_stderr", "Standard error of the last pass's progressive AUC.", ["task"]
        )
        self.positives = gauge("pepnet_progressive_positives", "Positive labels in the last pass.", ["task"])
        self.auc = gauge("pepnet_progressive_auc", "Progressive AUC of the last pass, all domains.", ["task"])
        self.logloss = gauge(
            "pepnet_progressive_logloss", "Progressive logloss of the last pass, all domains.", ["task"]
        )
        self.domain_auc = gauge(
            "pepnet_progressive_domain_auc", "Progressive AUC of the last pass by domain.", ["task", "domain"]
        )
        self.domain_logloss = gauge(
            "pepnet_progressive_domain_logloss", "Progressive logloss of the last pass by domain.", ["task", "domain"]
        )
        self.trained_samples = counter("pepnet_trained_samples_total", "Samples trained.")
        self.samples_per_second = gauge(
            "pepnet_train_samples_per_second", "Training throughput of the last pass in samples per second."
        )
        self.pass_index = gauge("pepnet_pass_index", "Index of the last completed pass.")
        self.pass_duration = Histogram(
            "pepnet_pass_duration_seconds", "Wall-clock duration of a pass.", buckets=PASS_DURATION_BUCKETS_S,
            registry=registry,
        )  # fmt: skip
        self.last_pass_completion = gauge(
            "pepnet_last_pass_completion_timestamp_seconds",
            "Unix time of the last completed pass (or of the trainer start).",
        )
        self.last_checkpoint = gauge(
            "pepnet_last_checkpoint_timestamp_seconds",
            "Unix time of the last checkpoint written (or of the trainer start).",
        )
        self.trained_event_time = gauge(
            "pepnet_trained_event_time_seconds", "Largest event time trained so far, Unix seconds."
        )
        self.dropped_duplicates = counter(
            "pepnet_dropped_duplicate_samples_total", "Samples dropped because their sample id was already trained."
        )
        self.invalid_samples = counter(
            "pepnet_invalid_samples_total", "Messages of the samples topic that are not a sample (skipped)."
        )
        self.consumer_lag = ConsumerLagGauge(registry)
        started = self._clock()
        self.last_pass_completion.set(started)
        self.last_checkpoint.set(started)
        self._previous_logloss: dict[str, tuple[float, float]] = {}  # task -> (logloss, its stderr)
        self._rising: dict[str, int] = {}
        self._max_event_time_s = 0.0

    def record_pass(self, record: PassRecord, completed_at_s: float | None = None) -> None:
        """Publish a completed pass: loss, progressive metrics, samples, duration, completion time (Unix s)."""
        for task, value in record.loss.items():
            self.loss.labels(task=task).set(value)
        for task, value in record.logloss.items():
            stderr = record.logloss_stderr.get(task, math.nan)
            previous, previous_stderr = self._previous_logloss.get(task, (math.nan, math.nan))
            margin = RISE_SIGNIFICANCE * math.sqrt(stderr**2 + previous_stderr**2)
            rising = math.isfinite(value) and math.isfinite(previous) and value - previous > margin
            self._rising[task] = self._rising.get(task, 0) + 1 if rising else 0
            self.logloss_rising_passes.labels(task=task).set(self._rising[task])
            self._previous_logloss[task] = (value, stderr)
        for task, value in record.auc.items():
            self.auc.labels(task=task).set(value)
            positives = record.positives.get(task, 0)
            negatives = record.observed.get(task, 0) - positives
            self.auc_stderr.labels(task=task).set(auc_stderr(value, positives, negatives))
        for task, positives in record.positives.items():
            self.positives.labels(task=task).set(positives)
        for task, value in record.logloss.items():
            self.logloss.labels(task=task).set(value)
        for task, by_domain in record.auc_by_domain.items():
            for domain, value in by_domain.items():
                self.domain_auc.labels(task=task, domain=domain).set(value)
        for task, by_domain in record.logloss_by_domain.items():
            for domain, value in by_domain.items():
                self.domain_logloss.labels(task=task, domain=domain).set(value)
        self.trained_samples.inc(record.samples)
        self.samples_per_second.set(record.samples_per_s)
        self.pass_index.set(record.pass_index)
        self.pass_duration.observe(record.duration_s)
        self._max_event_time_s = max(self._max_event_time_s, record.event_time_max_ms / 1000)
        self.trained_event_time.set(self._max_event_time_s)
        self.last_pass_completion.set(self._clock() if completed_at_s is None else completed_at_s)

    def record_checkpoint(self, timestamp_s: float | None = None) -> None:
        """Note a checkpoint written (or restored) at `timestamp_s` Unix seconds (default: now)."""
        self.last_checkpoint.set(self._clock() if timestamp_s is None else timestamp_s)

    def record_dropped_duplicates(self, count: int) -> None:
        """Count `count` samples dropped because their id was already trained."""
        self.dropped_duplicates.inc(count)

    def update_consumer_lag(self, stats_json: str) -> int:
        """Feed a librdkafka statistics JSON (pass as confluent-kafka `stats_cb`); returns the total lag."""
        return self.consumer_lag.update_from_stats(stats_json)
