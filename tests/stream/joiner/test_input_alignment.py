"""Pausing the input that runs ahead in event time: hysteresis, and never waiting for a silent input."""

from __future__ import annotations

from stream.joiner.input_alignment import InputAligner
from stream.joiner.state import StreamClock

IMP, ACT = "imp", "act"


def clock(impressions_ms: int, actions_ms: int) -> StreamClock:
    return StreamClock(impressions_time_ms=impressions_ms, actions_time_ms=actions_ms)


def always(topic: str, partition: int) -> bool:
    return True


def test_the_input_ahead_is_paused_until_the_lead_halves() -> None:
    aligner = InputAligner(IMP, ACT, 1000)
    assert aligner.update([(0, clock(5000, 5000))], always) == ([], [])
    assert aligner.update([(0, clock(5000, 6001))], always) == ([(ACT, 0)], [])  # actions 1001 ms ahead
    assert aligner.update([(0, clock(5400, 6001))], always) == ([], [])  # 601 ms: still above half
    assert aligner.update([(0, clock(5600, 6001))], always) == ([], [(ACT, 0)])  # 401 ms: resumed
    assert aligner.update([(0, clock(7002, 6001)), (1, clock(1, 2))], always) == ([(IMP, 0)], [])


def test_never_paused_while_the_other_input_has_nothing_to_read() -> None:
    aligner = InputAligner(IMP, ACT, 1000)
    backlog = {(IMP, 0): False, (ACT, 0): True}
    assert aligner.update([(0, clock(1000, 9000))], lambda t, p: backlog[(t, p)]) == ([], [])
    backlog[(IMP, 0)] = True
    assert aligner.update([(0, clock(1000, 9000))], lambda t, p: backlog[(t, p)]) == ([(ACT, 0)], [])
    backlog[(IMP, 0)] = False  # impressions read to their end: actions must go on
    assert aligner.update([(0, clock(1000, 9000))], lambda t, p: backlog[(t, p)]) == ([], [(ACT, 0)])


def test_off_and_unknown_times_and_forget() -> None:
    assert InputAligner(IMP, ACT, 0).update([(0, clock(0, 10**9))], always) == ([], [])
    aligner = InputAligner(IMP, ACT, 1000)
    assert aligner.update([(0, StreamClock(actions_time_ms=10**9))], always) == ([], [])  # nothing read on one side
    aligner.update([(0, clock(0, 10**9))], always)
    assert aligner.forget() == [(ACT, 0)] and aligner.paused == set()
