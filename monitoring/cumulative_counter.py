"""A Prometheus counter whose value is set from a cumulative count kept elsewhere."""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector, CollectorRegistry


class CumulativeCounter(Collector):
    """Exposes cumulative counts owned by another component (e.g. the embedding table) as a counter.

    The component already counts since its start, so incrementing a `prometheus_client.Counter` by
    differences would drift when the component is rebuilt (restored from a checkpoint); exposing the
    count as-is lets Prometheus treat a decrease as an ordinary counter reset.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str],
        registry: CollectorRegistry,
    ) -> None:
        if not name.endswith("_total"):
            raise ValueError(f"name must end with _total (Prometheus counter convention), got {name!r}")
        self._name = name
        self._documentation = documentation
        self._labelnames = tuple(labelnames)
        self._values: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def set(self, value: float, labelvalues: Sequence[str] = ()) -> None:
        """Set the cumulative count of one label combination (label values in `labelnames` order)."""
        labelvalues = tuple(str(v) for v in labelvalues)
        if len(labelvalues) != len(self._labelnames):
            raise ValueError(
                f"labelvalues must have {len(self._labelnames)} values {self._labelnames}, got {labelvalues}"
            )
        if value < 0:
            raise ValueError(f"value of {self._name}{labelvalues} must be >= 0, got {value}")
        with self._lock:
            self._values[labelvalues] = float(value)

    def set_by_label(self, values: Mapping[str, float]) -> None:
        """Set the counts of a single-label counter from `{label value: cumulative count}`."""
        if len(self._labelnames) != 1:
            raise ValueError(f"set_by_label needs exactly one label, {self._name} has {self._labelnames}")
        for labelvalue, value in values.items():
            self.set(value, (labelvalue,))

    def value(self, labelvalues: Sequence[str] = ()) -> float:
        """Current count of one label combination (0 if never set)."""
        with self._lock:
            return self._values.get(tuple(str(v) for v in labelvalues), 0.0)

    def describe(self) -> Iterator[CounterMetricFamily]:
        """The family without samples (prometheus_client collector protocol)."""
        yield CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)

    def collect(self) -> Iterator[CounterMetricFamily]:
        """The family with the current count of every label combination."""
        family = CounterMetricFamily(self._name, self._documentation, labels=self._labelnames)
        with self._lock:
            items = sorted(self._values.items())
        for labelvalues, value in items:
            family.add_metric(labelvalues, value)
        yield family
