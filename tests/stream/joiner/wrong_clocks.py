"""A simulated stream in which a few devices have wrong clocks: every event of such a user carries
its true event time plus a constant offset (minutes to days, ahead and behind), while the log still
delivers it when it really happened. Shared by the joiner's unit and real-broker tests."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from stream.events.formats import Action, Impression, LabelledSample

MINUTE, HOUR, DAY = 60_000, 3_600_000, 86_400_000
# Two within joiner.max_ahead_ms (joined, never moving the stream time), three beyond it
# (dead-lettered as future_event_time), two behind (late impressions, unlabelled).
OFFSETS_MS = (2 * MINUTE, 40 * MINUTE, 3 * HOUR, 12 * HOUR, 2 * DAY, -5 * MINUTE, -DAY)


def wrong_clock_users(events: list[Impression | Action], spread: int = 4) -> dict[int, int]:
    """User id -> clock offset (ms) for ``len(OFFSETS_MS)`` users with actions, chosen with
    different ``user_id % spread`` in turn so that they sit in several partitions."""
    with_actions = Counter(e.user_id for e in events if isinstance(e, Action))
    users = sorted(with_actions, key=lambda u: (-with_actions[u], u))
    chosen: dict[int, int] = {}
    for residue, offset in enumerate(OFFSETS_MS):
        user = next(u for u in users if u % spread == residue % spread and u not in chosen)
        chosen[user] = offset
    return chosen


def with_wrong_clocks(events: list[Impression | Action], offsets: dict[int, int]) -> list[Impression | Action]:
    """The same stream, in the same order, with the offset users' event times shifted."""
    return [
        replace(e, event_time_ms=e.event_time_ms + offsets[e.user_id]) if e.user_id in offsets else e for e in events
    ]


def assert_wrong_clock_samples(
    samples: list[LabelledSample], truth: dict[str, dict[str, int]], behind: list[str]
) -> None:
    """The samples of wrong-clock users: each impression of a clock behind is late (emitted once,
    nothing observed); one ahead was joined with its own actions (same skew): its true labels."""
    late = sorted(s.sample_id for s in samples if s.join.source == "late_impression")
    assert late == sorted(behind)
    assert all(s.labels == {} for s in samples if s.join.source == "late_impression")
    assert all(s.labels == truth[s.sample_id] for s in samples if s.join.source != "late_impression")
