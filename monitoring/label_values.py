"""Caps the number of distinct values a metric label can take (bounded cardinality)."""

from __future__ import annotations

import threading

OVERFLOW_LABEL_VALUE = "other"


class BoundedLabelValues:
    """Admits label values up to `limit` distinct ones; later new values map to `"other"`.

    Label values that come from input data (e.g. dead-letter reasons) could otherwise create one
    time series per distinct string and overload Prometheus.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        self._limit = limit
        self._seen: set[str] = set()
        self._lock = threading.Lock()

    def admit(self, value: str) -> str:
        """The label value to use for `value`: itself while under the limit, else `"other"`."""
        with self._lock:
            if value in self._seen:
                return value
            if len(self._seen) < self._limit:
                self._seen.add(value)
                return value
            return OVERFLOW_LABEL_VALUE
