"""Keep the two inputs of a partition close in event time by pausing the one that runs ahead.

Read from a backlog, the consumer returns whatever it fetched: often the smaller actions topic
runs minutes of event time ahead of the impressions. The join stays correct in any interleaving
(docs/events.md), but an action read before its impression is held as an early action (a state
record written, then deleted) and an impression read far ahead of its actions waits longer for
the watermark (memory). So the kafka engine pauses the input of a partition that is more than
``max_lead_ms`` ahead of the other, and resumes it once the lead has fallen below half that.

Pausing is not free: librdkafka drops a paused partition's prefetched messages and fetches them
again on resume (confluentinc/librdkafka#5343), so the bound is wide (5 minutes by default) and
the pause a guard against extreme skew, not a fine-grained merge.

An input is paused only while the other one provably has unread messages (its end offset, as last
seen by the consumer, lies beyond its read position): a paused input can never wait for a
silent one, so the rule cannot stall the join. Pure logic; the engine applies the decisions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from stream.joiner.state import NO_TIME, StreamClock

Input = tuple[str, int]  # (topic, partition)


class InputAligner:
    """Decides which (topic, partition) inputs to pause; ``max_lead_ms`` 0 turns it off."""

    def __init__(self, impressions_topic: str, actions_topic: str, max_lead_ms: int) -> None:
        self.topics = (impressions_topic, actions_topic)
        self.max_lead_ms = max_lead_ms
        self.paused: set[Input] = set()

    def update(
        self, clocks: Iterable[tuple[int, StreamClock]], has_unread: Callable[[str, int], bool]
    ) -> tuple[list[Input], list[Input]]:
        """(to pause, to resume) given each partition's clock; ``has_unread(topic, partition)``
        says whether that input has messages beyond its read position."""
        if self.max_lead_ms <= 0:
            return [], []
        impressions, actions = self.topics
        wanted: set[Input] = set()
        for partition, clock in clocks:
            if clock.impressions_time_ms == NO_TIME or clock.actions_time_ms == NO_TIME:
                continue
            lead = clock.impressions_time_ms - clock.actions_time_ms  # > 0: impressions ahead
            for ahead, behind, ahead_by in ((impressions, actions, lead), (actions, impressions, -lead)):
                # Hysteresis: pause beyond the limit, stay paused down to half of it.
                limit = self.max_lead_ms // 2 if (ahead, partition) in self.paused else self.max_lead_ms
                if ahead_by > limit and has_unread(behind, partition):
                    wanted.add((ahead, partition))
        pause = sorted(wanted - self.paused)
        resume = sorted(self.paused - wanted)
        self.paused = wanted
        return pause, resume

    def forget(self) -> list[Input]:
        """After a rebalance: nothing is paused any more (returns what was)."""
        paused, self.paused = sorted(self.paused), set()
        return paused
