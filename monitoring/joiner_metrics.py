"""Prometheus metrics of a stream worker: the impression/action joiner and its dead letters."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

from prometheus_client import Counter, Gauge
from prometheus_client.registry import CollectorRegistry

from monitoring.consumer_lag import ConsumerLagGauge
from monitoring.label_values import BoundedLabelValues

MAX_DEAD_LETTER_REASONS = 64


class JoinerMetrics:
    """Metrics of one joiner worker process; Prometheus sums them across workers.

    Also valid in prometheus_client's multiprocess mode (`pepnet worker --processes N`): gauges
    say how their values combine over the processes (pending and partitions: sum over the live ones).

    Attributes (prometheus_client objects; call `.inc()` / `.set()` on them):
        pending_impressions: pepnet_joiner_pending_impressions, impressions waiting for their window.
        impressions_consumed: pepnet_joiner_impressions_consumed_total, valid impressions read.
        actions_consumed: pepnet_joiner_actions_consumed_total, valid actions read.
        samples_emitted: pepnet_joiner_samples_emitted_total, labelled samples produced by the join.
        joined_actions: pepnet_joiner_joined_actions_total, actions attached to a pending impression.
        late_actions: pepnet_joiner_late_actions_total, actions after their impression was emitted.
        orphan_actions: pepnet_joiner_orphan_actions_total, actions whose impression never arrived.
        prelabelled_samples: pepnet_joiner_prelabelled_samples_total, pre-labelled impressions passed
            straight through.
        late_impressions: pepnet_joiner_late_impressions_total, impressions emitted at once with no
            label observed (behind their stream, or their window already closed).
        ahead_events: pepnet_joiner_ahead_events_total, events joined without moving their stream
            time (too far ahead of it: a wrong clock, or traffic that moved on).
        stream_time_jumps: pepnet_joiner_stream_time_jumps_total, stream times moved forward by a run
            of ahead events.
        assigned_partitions: pepnet_joiner_assigned_partitions, input partitions this worker joins now.
        consumer_lag: pepnet_consumer_lag_messages{topic,partition}, from librdkafka statistics
            (`consumer_lag.update_from_stats`; the confluent-kafka engine only).
    Dead letters go through `dead_letter(reason)`: pepnet_dead_letters_total{reason}.
    """

    def __init__(self, registry: CollectorRegistry, dead_letter_reasons: Sequence[str] = ()) -> None:
        """`dead_letter_reasons` (the validation's reason codes) are exported at 0 from the start."""
        counter = partial(Counter, registry=registry)
        self.pending_impressions = Gauge(
            "pepnet_joiner_pending_impressions", "Impressions waiting for their join window to close.",
            registry=registry, multiprocess_mode="livesum",
        )  # fmt: skip
        self.assigned_partitions = Gauge(
            "pepnet_joiner_assigned_partitions", "Input partition pairs (impressions + actions) this worker joins.",
            registry=registry, multiprocess_mode="livesum",
        )  # fmt: skip
        self.consumer_lag = ConsumerLagGauge(registry)
        self.impressions_consumed = counter(
            "pepnet_joiner_impressions_consumed_total", "Valid impressions read by the joiner."
        )
        self.actions_consumed = counter("pepnet_joiner_actions_consumed_total", "Valid actions read by the joiner.")
        self.samples_emitted = counter("pepnet_joiner_samples_emitted_total", "Labelled samples emitted by the join.")
        self.joined_actions = counter("pepnet_joiner_joined_actions_total", "Actions attached to a pending impression.")
        self.late_actions = counter(
            "pepnet_joiner_late_actions_total", "Actions that arrived after their impression was emitted."
        )
        self.orphan_actions = counter("pepnet_joiner_orphan_actions_total", "Actions whose impression was never seen.")
        self.prelabelled_samples = counter(
            "pepnet_joiner_prelabelled_samples_total", "Pre-labelled impressions passed straight through."
        )
        self.late_impressions = counter(
            "pepnet_joiner_late_impressions_total", "Impressions emitted at once with no label observed (late)."
        )
        self.ahead_events = counter(
            "pepnet_joiner_ahead_events_total", "Events joined without moving their stream time (far ahead of it)."
        )
        self.stream_time_jumps = counter(
            "pepnet_joiner_stream_time_jumps_total", "Stream times moved forward by a run of far-ahead events."
        )
        self.dead_letters = counter(
            "pepnet_dead_letters_total", "Invalid events sent to the dead-letter topic, by reason.", ["reason"]
        )
        self._reasons = BoundedLabelValues(MAX_DEAD_LETTER_REASONS)
        for reason in dead_letter_reasons:
            self.dead_letters.labels(reason=self._reasons.admit(reason))

    def dead_letter(self, reason: str, count: int = 1) -> None:
        """Count `count` dead letters of `reason` (beyond 64 distinct reasons they count as "other")."""
        self.dead_letters.labels(reason=self._reasons.admit(reason)).inc(count)
