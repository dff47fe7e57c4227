"""Event-time skew: how far one event may move the stream time of its input (wrong device clocks).

Phone clocks are wrong all the time. The stream time of an input (the largest event time read)
decides whether later events are late, so one event stamped hours ahead would make every later
event of its partition late. Per input of a partition, with stream time ``S``:

* ``t <= S + step_ms``: a *normal* event; ``S`` becomes ``max(S, t)``.
* ``S + step_ms < t <= S + max_ahead_ms``: an *ahead* event: joined like any other, ``S`` stays.
* ``t > S + max_ahead_ms``: *too far ahead*: dead-lettered (``future_event_time``), ``S`` stays.

Ahead and too-far events are *votes*: the latest one of each user is remembered until an on-time
event (``S - grace_ms <= t <= S + step_ms``) shows that the stream has not moved on. Once
``jump_users`` different users have voted, ``S`` jumps to the median of their votes: a partition
whose traffic really moved on (after a gap in traffic longer than ``step_ms``) follows it after a
few events, while wrong clocks among on-time traffic never move ``S``, and one device alone never
does. The first ``S`` of an input is set the same way (the median of its first ``jump_users``
users), so a wrong clock cannot set it either.

``step_ms <= grace_ms`` keeps the rule sound: an event accepted ``step_ms`` ahead leaves every
on-time event on time. Every decision depends only on the input's own events, in log order, so
it is the same in every interleaving of the two inputs, after a restart and in a replay.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NamedTuple

from stream.joiner.state import NO_TIME

Verdict = Literal["normal", "ahead", "too_far"]
Vote = list[int]  # [user id, event time ms]: JSON-friendly, persisted with the stream clock


class Admission(NamedTuple):
    """What one event did to its input's stream time."""

    stream_time: int
    verdict: Verdict
    jumped: bool = False  # its vote made the stream time jump


@dataclass(frozen=True)
class ClockSkewPolicy:
    """The skew bounds of one joiner (ms of event time); ``step_ms == 0`` turns the guard off."""

    step_ms: int
    max_ahead_ms: int
    jump_users: int
    grace_ms: int

    @property
    def enabled(self) -> bool:
        return self.step_ms > 0

    def admit(self, stream_time: int, votes: list[Vote], user_id: int, event_time: int) -> Admission:
        """The input's new stream time and the verdict on an event of ``user_id`` at ``event_time``.

        ``votes`` (the input's votes, persisted with its clock) is updated in place.
        """
        if not self.enabled:
            return Admission(max(stream_time, event_time), "normal")
        if stream_time != NO_TIME and event_time <= stream_time + self.step_ms:
            if votes and event_time >= stream_time - self.grace_ms:
                votes.clear()  # on-time traffic: the stream has not moved on
            return Admission(max(stream_time, event_time), "normal")
        jumped = self._vote(votes, user_id, event_time)
        if jumped:
            times = sorted(t for _, t in votes)
            votes.clear()
            stream_time = times[(len(times) - 1) // 2]
        elif stream_time == NO_TIME:
            return Admission(NO_TIME, "normal")  # too few users yet to trust a first stream time
        if event_time <= stream_time + self.step_ms:
            return Admission(max(stream_time, event_time), "normal", jumped)
        return Admission(stream_time, "ahead" if event_time <= stream_time + self.max_ahead_ms else "too_far", jumped)

    def _vote(self, votes: list[Vote], user_id: int, event_time: int) -> bool:
        """Record the vote; True once ``jump_users`` users have voted."""
        for vote in votes:
            if vote[0] == user_id:
                vote[1] = max(vote[1], event_time)
                return False
        votes.append([user_id, event_time])
        return len(votes) >= self.jump_users
