"""The event-time join of one partition: pending impressions, attached actions, a watermark.

Pure logic, no Kafka: the faust worker feeds it the validated events of impressions partition
``p`` and actions partition ``p`` with their offsets, persists :attr:`JoinOutput.changes` to the
changelog-backed table and produces :attr:`JoinOutput.emitted`. Rules (docs/events.md):

* Each input has its own *stream time* (max event time read; see wrong clocks below). The watermark is the smaller one,
  so a lagging input never lets a window close before its events are read.
* An impression closes when the watermark passes ``event_time + window + grace``; it becomes a
  sample with label 1 for each task with an attached action and 0 for the others.
* An action is *on time* if its event time is at least its input's stream time minus grace;
  otherwise it is late and dropped. An on-time action attaches to its pending impression when it
  falls inside ``[impression time, impression time + window]``; an action read before its
  impression waits until the impression stream passes its time + grace, then it is an orphan.
* An impression older than its stream time minus grace, or whose window the watermark has already
  passed (after an idle close), is late: emitted at once with no label observed (its actions may
  already be gone), so the outcome never depends on read interleaving.
* Wrong clocks (``stream.joiner.clock_skew``): an event far ahead of its input's stream time is
  joined without moving it, or dead-lettered (``InvalidEvent`` ``future_event_time``) beyond
  ``max_ahead_ms``; the stream time never jumps on one event.
* Events at or below the last applied offset of their input are skipped: after a crash the
  restored state already holds their effect.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator
from typing import Any

from stream.events.formats import compact_json
from stream.events.validation import InvalidEvent
from stream.joiner.clock_skew import Admission, ClockSkewPolicy
from stream.joiner.join_output import ActionFields, EmittedSample, ImpressionFields, JoinOutput, StateChange
from stream.joiner.state import (
    NO_TIME,
    PendingImpression,
    StreamClock,
    as_record,
    clock_key,
    early_key,
    encode_record,
    pending_key,
)


class PartitionJoiner:
    """Joins the actions of one partition to its impressions in event time."""

    def __init__(
        self,
        partition: int,
        tasks: list[str],
        window_ms: int,
        grace_ms: int,
        late_memory_ms: int = 600_000,
        skew: ClockSkewPolicy | None = None,
        state_after_acks: bool = False,
    ) -> None:
        self.partition = partition
        self.tasks = list(tasks)
        self.window_ms = window_ms
        self.grace_ms = grace_ms
        self.close_after_ms = window_ms + grace_ms  # an impression closes this long after its event time
        # None: no guard, the stream time is the largest event time read (unit tests of the rules).
        self.skew = skew or ClockSkewPolicy(0, 0, 1, grace_ms)
        self.clock = StreamClock()
        self.pending: dict[str, PendingImpression] = {}
        self.early: dict[str, set[tuple[str, int]]] = {}
        # Close heap: the pending impressions themselves, ordered by (close deadline, id); it holds
        # exactly the values of `pending` (an impression leaves both only when it closes).
        self._deadlines: list[PendingImpression] = []
        # Min-heap with lazy deletion: (expiry time, id) of the early actions.
        self._early_expiry: list[tuple[int, str]] = []
        self._out = JoinOutput()
        # Changed state keys since the last drain -> their value now (a PendingImpression or an
        # early-action set, encoded at drain time; None = delete). See drain for the write order.
        self._changes: dict[str, PendingImpression | set[tuple[str, int]] | None] = {}
        # Keys created since the changes were last taken: no record of theirs is in the changelog,
        # so deleting one needs no tombstone.
        self._unwritten: set[str] = set()
        self._clock_dirty = False
        # True when the engine takes the changes only once every sample emitted before is
        # acknowledged (the kafka engine, at commit time): a closed impression's record is then
        # deleted with the next changes, and one opened and closed in between is never written.
        # False (faust, changes written before the batch's samples): the record stays until the
        # engine reports the sample acknowledged.
        self.state_after_acks = state_after_acks
        # Ids emitted within late_memory_ms of action stream time: only to count late vs orphan
        # actions (in memory, not persisted; it never changes a sample).
        self.late_memory_ms = late_memory_ms
        self._recent: dict[str, int] = {}
        # The ids of _recent in emission order and their close deadlines (two deques rather than
        # one of (deadline, id) tuples: 16 bytes per emitted impression, no object allocated).
        self._recent_ids: deque[str] = deque()
        self._recent_deadlines: deque[int] = deque()
        self._labels_json: dict[frozenset[str], bytes] = {}  # tasks with an action -> labels JSON

    # -- recovery ---------------------------------------------------------------------------

    @classmethod
    def restore(
        cls,
        partition: int,
        tasks: list[str],
        window_ms: int,
        grace_ms: int,
        records: Iterable[tuple[str, dict[str, Any] | bytes]],
        skew: ClockSkewPolicy | None = None,
        state_after_acks: bool = False,
    ) -> PartitionJoiner:
        """Rebuild a joiner, including its close heaps, from the state records of ``partition``
        (decoded, or JSON bytes as :meth:`take_changes` wrote them)."""
        joiner = cls(partition, tasks, window_ms, grace_ms, skew=skew, state_after_acks=state_after_acks)
        prefix = f"{partition}:"
        for key, record in records:
            if not key.startswith(prefix) or record is None:
                continue
            kind = key[len(prefix) :].split(":", 1)
            if kind[0] == "clock":
                joiner.clock = StreamClock.from_record(as_record(record))
            elif kind[0] == "i":
                pending = PendingImpression.from_record(record, joiner.close_after_ms)
                joiner.pending[pending.impression_id] = pending
            elif kind[0] == "a":
                actions = {(a, t) for a, t in as_record(record)["actions"]}
                joiner.early[kind[1]] = actions
                heapq.heappush(joiner._early_expiry, (min(t for _, t in actions) + grace_ms, kind[1]))
        # The close heap of the pending impressions restored (a key written twice holds its last
        # record: no stale entry).
        joiner._deadlines = list(joiner.pending.values())
        heapq.heapify(joiner._deadlines)
        for impression_id in [i for i in joiner.early if i in joiner.pending]:
            # A crash between writing an impression and deleting its early actions: merge them.
            pending = joiner.pending[impression_id]
            for task, time_ms in sorted(joiner.early.pop(impression_id)):
                joiner._attach(pending, task, time_ms)
            joiner._changes[pending_key(partition, impression_id)] = pending
            joiner._changes[early_key(partition, impression_id)] = None
        joiner._out.counts.clear()
        return joiner

    # -- input ------------------------------------------------------------------------------

    def on_impression(self, impression: ImpressionFields, offset: int, impression_json: bytes = b"") -> None:
        """Apply one valid impression read at ``offset`` of impressions partition p.

        ``impression_json``: its JSON object as read (validated), kept in the state record and
        the sample instead of encoding the impression again; empty = encode it (an Impression).
        Raises :class:`InvalidEvent` (``future_event_time``, after recording the offset) for an
        impression too far ahead of the stream time: the caller dead-letters it.
        """
        clock = self.clock
        if offset <= clock.impressions_offset:
            self._out.counts["replayed_skipped"] += 1
            return
        clock.impressions_offset = offset
        self._clock_dirty = True
        if not impression_json:
            impression_json = compact_json(vars(impression))
        if impression.labels is not None:
            # Pre-labelled input takes no part in the join, not even in the stream time.
            self._emit_prelabelled(impression, impression_json)
            return
        time_ms = impression.event_time_ms
        deadline = time_ms + self.close_after_ms
        # Late: more than grace behind its stream, or its window already closed by an idle close
        # (the watermark floor): joining it would emit it at once with every label 0.
        on_time = (
            clock.impressions_time_ms == NO_TIME or time_ms >= clock.impressions_time_ms - self.grace_ms
        ) and deadline >= clock.watermark_ms
        admission = self.skew.admit(clock.impressions_time_ms, clock.impressions_votes, impression.user_id, time_ms)
        clock.impressions_time_ms = admission.stream_time
        self._check_skew("impressions", admission, time_ms)
        impression_id = impression.impression_id
        if impression_id in self.pending:
            self._out.counts["duplicate_impressions"] += 1
        elif not on_time:
            self._emit_late_impression(impression, impression_json)
        else:
            pending = PendingImpression(deadline, impression_id, impression_json)
            self.pending[impression_id] = pending
            early = self.early.pop(impression_id, None)
            for task, action_ms in sorted(early or ()):
                self._attach(pending, task, action_ms)
            self._put_new(pending_key(self.partition, impression_id), pending)
            if early is not None:
                self._changes[early_key(self.partition, impression_id)] = None
            heapq.heappush(self._deadlines, pending)

    def on_action(self, action: ActionFields, offset: int) -> None:
        """Apply one valid action read at ``offset`` of actions partition p (raises
        :class:`InvalidEvent` ``future_event_time`` like :meth:`on_impression`)."""
        clock = self.clock
        if offset <= clock.actions_offset:
            self._out.counts["replayed_skipped"] += 1
            return
        time_ms = action.event_time_ms
        on_time = clock.actions_time_ms == NO_TIME or time_ms >= clock.actions_time_ms - self.grace_ms
        admission = self.skew.admit(clock.actions_time_ms, clock.actions_votes, action.user_id, time_ms)
        clock.actions_time_ms = admission.stream_time
        clock.actions_offset = offset
        self._clock_dirty = True
        self._check_skew("actions", admission, time_ms)
        if not on_time:
            self._out.counts["late_actions"] += 1
        else:
            impression_id = action.impression_id
            pending = self.pending.get(impression_id)
            if pending is not None:
                if self._attach(pending, action.action, time_ms):
                    self._changes[pending_key(self.partition, impression_id)] = pending
            elif impression_id in self._recent:
                self._out.counts["late_actions"] += 1
            else:
                self._hold_early(impression_id, action.action, time_ms)

    def close_all(self) -> None:
        """Idle close: both inputs are read to their end, so close every pending impression now."""
        clock = self.clock
        top = max(clock.impressions_time_ms, clock.actions_time_ms)
        if top == NO_TIME:
            return
        clock.closed_to_ms = max(clock.closed_to_ms, top + self.close_after_ms + 1)
        self._clock_dirty = True
        for impression_id in list(self.early):
            self._drop_early(impression_id, "orphan_actions")
        self._close_due()

    def drain(self) -> JoinOutput:
        """The samples and counts gathered so far (:meth:`drain_samples`) with the state changes
        (:meth:`take_changes`): what the faust engine writes after each batch."""
        out = self.drain_samples()
        out.changes = list(self.take_changes())
        return out

    def drain_samples(self) -> JoinOutput:
        """Close what the stream times allow; return and reset the samples and counts gathered so
        far (``changes`` empty: the state changes accumulate until :meth:`take_changes`)."""
        self._advance()
        out, self._out = self._out, JoinOutput()
        return out

    def take_changes(self) -> Iterator[StateChange]:
        """The state changes since the last call, as changelog writes in order, and reset them.
        The changes are taken at the call; each record is encoded as the iterator reaches it (an
        interval's records are never all held encoded at once), so consume it before applying
        more events.

        Each changed key is written once, with its value now: first every record that exists,
        then every deletion (none for a key never written), then the clock. A crash can leave any
        prefix of these writes in the changelog, and the state it gives (the previous state plus
        some of the new records, with the previous clock) is one from which re-reading the same
        events gives the same samples: an impression found pending again is skipped as a
        duplicate, its actions are counted once, and early actions whose deletion is missing merge
        into their impression on restore. A deletion never precedes the record that absorbed what
        it deletes.
        """
        changes, unwritten = self._changes, self._unwritten
        clock = encode_record(self.clock.to_record()) if self._clock_dirty else None
        self._changes, self._unwritten, self._clock_dirty = {}, set(), False
        return _changelog_writes(self.partition, changes, unwritten, clock)

    @property
    def pending_count(self) -> int:
        return len(self.pending)

    # -- internals --------------------------------------------------------------------------

    def _advance(self) -> None:
        """Expire early actions and close the windows the stream times have passed.

        Done once per drained batch rather than after every event: it gives the same samples,
        because an action read after its impression's window became closable is necessarily late
        (its stream is then past the window's end + grace) and is never attached anyway.
        """
        if self._early_expiry:
            self._expire_early_actions()
        self._close_due()
        if self._recent_ids:
            self._forget_old_emitted()

    def _check_skew(self, input_name: str, admission: Admission, time_ms: int) -> None:
        counts = self._out.counts
        counts["stream_time_jumps"] += admission.jumped
        if admission.verdict == "ahead":
            counts["ahead_events"] += 1
        elif admission.verdict == "too_far":
            stream_time = admission.stream_time
            raise InvalidEvent(
                "event_time_ms",
                f"{time_ms} is {time_ms - stream_time} ms ahead of the stream time of {input_name} partition "
                f"{self.partition} ({stream_time}; joiner.max_ahead_ms {self.skew.max_ahead_ms}): a wrong clock?",
                "future_event_time",
            )

    def _attach(self, pending: PendingImpression, task: str, time_ms: int) -> bool:
        start = pending.deadline_ms - self.close_after_ms  # the impression's event time
        if not start <= time_ms <= start + self.window_ms:
            self._out.counts["out_of_window_actions"] += 1
            return False
        action = (task, time_ms)
        if action in pending.actions:
            self._out.counts["duplicate_actions"] += 1
            return False
        pending.actions += (action,)
        self._out.counts["joined_actions"] += 1
        return True

    def _hold_early(self, impression_id: str, task: str, time_ms: int) -> None:
        expiry = time_ms + self.grace_ms
        if self.clock.impressions_time_ms > expiry:
            # The impression stream is already past the time the impression must have had.
            self._out.counts["orphan_actions"] += 1
            return
        actions = self.early.get(impression_id)
        key = early_key(self.partition, impression_id)
        if actions is None:
            actions = self.early[impression_id] = set()
            self._put_new(key, actions)
        elif (task, time_ms) in actions:
            return
        actions.add((task, time_ms))
        heapq.heappush(self._early_expiry, (expiry, impression_id))
        self._changes[key] = actions

    def _expire_early_actions(self) -> None:
        stream_time = self.clock.impressions_time_ms
        heap = self._early_expiry
        while heap and heap[0][0] < stream_time:
            expiry, impression_id = heapq.heappop(heap)
            actions = self.early.get(impression_id)
            if actions is None or min(t for _, t in actions) + self.grace_ms != expiry:
                continue  # stale heap entry: attached, dropped, or an earlier action leads
            self._drop_early(impression_id, "orphan_actions")

    def _put_new(self, key: str, value: PendingImpression | set[tuple[str, int]]) -> None:
        """A state value for a key that has no live record (created since the changes were taken,
        or deleted by changes not taken yet)."""
        if key not in self._changes:  # else: a deletion of a written record is pending
            self._unwritten.add(key)
        self._changes[key] = value

    def _drop_early(self, impression_id: str, reason: str) -> None:
        actions = self.early.pop(impression_id)
        self._out.counts[reason] += len(actions)
        self._changes[early_key(self.partition, impression_id)] = None

    def _close_due(self) -> None:
        watermark = self.clock.watermark_ms
        heap = self._deadlines
        if not heap or heap[0].deadline_ms >= watermark:
            return
        emitted = self._out.emitted
        pending_of = self.pending
        changes, delete_now = self._changes, self.state_after_acks
        while heap and heap[0].deadline_ms < watermark:
            pending = heapq.heappop(heap)
            impression_id, deadline = pending.impression_id, pending.deadline_ms
            del pending_of[impression_id]
            key: str | None = pending_key(self.partition, impression_id)
            if delete_now:  # with the next changes, after this sample's acknowledgement
                changes[key] = None
                key = None
            emitted.append(
                EmittedSample(
                    impression_id, pending.user_id, pending.impression_json, self._labels(pending.actions), "join",
                    self.window_ms, len(pending.actions), deadline, key,
                )
            )  # fmt: skip
            self._remember_emitted(impression_id, deadline)

    def _labels(self, actions: tuple[tuple[str, int], ...]) -> bytes:
        """The labels JSON of a joined sample: 1 for each task with an action, else 0 (cached)."""
        positive = frozenset(task for task, _ in actions)
        labels = self._labels_json.get(positive)
        if labels is None:
            labels = self._labels_json[positive] = compact_json({t: int(t in positive) for t in self.tasks})
        return labels

    def _remember_emitted(self, impression_id: str, deadline: int) -> None:
        self._recent[impression_id] = deadline
        self._recent_ids.append(impression_id)
        self._recent_deadlines.append(deadline)

    def _forget_old_emitted(self) -> None:
        horizon = self.clock.actions_time_ms - self.late_memory_ms
        ids, deadlines = self._recent_ids, self._recent_deadlines
        while deadlines and deadlines[0] < horizon:
            deadlines.popleft()
            self._recent.pop(ids.popleft(), None)

    def _emit_prelabelled(self, impression: ImpressionFields, impression_json: bytes) -> None:
        labels = compact_json(dict(impression.labels or {}))
        self._out.emitted.append(
            EmittedSample(
                impression.impression_id, impression.user_id, impression_json, labels, "prelabelled",
                0, 0, impression.event_time_ms, None,
            )
        )  # fmt: skip
        self._out.counts["prelabelled"] += 1

    def _emit_late_impression(self, impression: ImpressionFields, impression_json: bytes) -> None:
        deadline = impression.event_time_ms + self.close_after_ms
        self._out.emitted.append(
            EmittedSample(
                impression.impression_id, impression.user_id, impression_json, b"{}", "late_impression",
                self.window_ms, 0, deadline, None,
            )
        )  # fmt: skip
        self._out.counts["late_impressions"] += 1
        if impression.impression_id in self.early:
            self._drop_early(impression.impression_id, "late_actions")
        # Its actions still to come are late too, not orphans (counted only).
        self._remember_emitted(impression.impression_id, deadline)


def _changelog_writes(
    partition: int,
    changes: dict[str, PendingImpression | set[tuple[str, int]] | None],
    unwritten: set[str],
    clock: bytes | None,
) -> Iterator[StateChange]:
    """The writes of :meth:`PartitionJoiner.take_changes`, in their order, encoded one at a time."""
    deletions = []
    for key, value in changes.items():
        if value is not None:
            yield key, _encode_value(value)
        elif key not in unwritten:
            deletions.append(key)
    for key in deletions:
        yield key, None
    if clock is not None:
        yield clock_key(partition), clock


def _encode_value(value: PendingImpression | set[tuple[str, int]]) -> bytes:
    """A changed state value as its record's JSON."""
    if isinstance(value, PendingImpression):
        return value.to_record()
    return encode_record({"actions": sorted(value)})
