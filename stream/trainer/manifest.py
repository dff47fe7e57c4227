"""The manifest of a pass: exactly which messages it holds and what they were."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class PartitionRange:
    """Offsets ``[start_offset, end_offset)`` of one partition of the samples topic; ``messages`` read."""

    partition: int
    start_offset: int
    end_offset: int
    messages: int

    def __post_init__(self) -> None:
        if self.end_offset < self.start_offset:
            raise ValueError(f"end_offset must be >= start_offset ({self.start_offset}), got {self.end_offset}")


@dataclass
class PassManifest:
    """What a pass was made of. Event times in ms since the epoch.

    ``messages`` counts the decoded messages of the ranges, ``duplicates`` those dropped as already
    seen sample ids, ``samples`` the ones trained (``messages - duplicates``).
    ``window_start_ms`` is the start of the pass's aligned event-time window (None without one).
    """

    pass_index: int
    topic: str
    ranges: list[PartitionRange]
    messages: int
    duplicates: int
    samples: int
    event_time_min_ms: int
    event_time_max_ms: int
    window_start_ms: int | None
    samples_by_domain: dict[str, int] = field(default_factory=dict)
    observed_by_task: dict[str, int] = field(default_factory=dict)
    positives_by_task: dict[str, int] = field(default_factory=dict)

    def next_offsets(self) -> dict[int, int]:
        """Partition -> first offset after this pass."""
        return {r.partition: r.end_offset for r in self.ranges}

    def content(self) -> dict[str, Any]:
        """Everything but the pass index: equal for the same messages whatever run made the pass."""
        data = self.to_dict()
        data.pop("pass_index")
        return data

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready fields (ranges as dicts)."""
        return asdict(self)

    def to_json(self) -> str:
        """The manifest as one JSON object, keys sorted."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PassManifest:
        """The inverse of :meth:`to_dict`."""
        data = dict(data)
        data["ranges"] = [PartitionRange(**r) for r in data["ranges"]]
        return cls(**data)


def merge_manifests(parts: list[PassManifest]) -> PassManifest:
    """The manifest of one pass cut by several trainer processes from disjoint partitions: ranges
    by partition, counts summed, event times over the parts that hold samples."""
    if len(parts) == 1:
        return parts[0]
    with_samples = [m for m in parts if m.samples]

    def summed(name: str) -> dict[str, int]:
        total: dict[str, int] = {}
        for manifest in parts:
            for key, value in getattr(manifest, name).items():
                total[key] = total.get(key, 0) + value
        return total

    first = parts[0]
    return PassManifest(
        pass_index=first.pass_index,
        topic=first.topic,
        ranges=sorted((r for m in parts for r in m.ranges), key=lambda r: r.partition),
        messages=sum(m.messages for m in parts),
        duplicates=sum(m.duplicates for m in parts),
        samples=sum(m.samples for m in parts),
        event_time_min_ms=min((m.event_time_min_ms for m in with_samples), default=0),
        event_time_max_ms=max((m.event_time_max_ms for m in with_samples), default=0),
        window_start_ms=first.window_start_ms,
        samples_by_domain=summed("samples_by_domain"),
        observed_by_task=summed("observed_by_task"),
        positives_by_task=summed("positives_by_task"),
    )
