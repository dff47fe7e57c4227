"""Event-time skew bounds: a wrong clock never moves a stream time; traffic that moved on does."""

from __future__ import annotations

from stream.joiner.clock_skew import ClockSkewPolicy
from stream.joiner.state import NO_TIME

POLICY = ClockSkewPolicy(step_ms=1_000, max_ahead_ms=60_000, jump_users=3, grace_ms=2_000)
T0 = 1_000_000
HOUR = 3_600_000


def feed(events: list[tuple[int, int]], policy: ClockSkewPolicy = POLICY, start: int = NO_TIME):
    """(user, time) events -> final stream time, verdicts ('jump' when the event made it jump), votes."""
    stream_time, votes, verdicts = start, [], []
    for user, t in events:
        admission = policy.admit(stream_time, votes, user, t)
        stream_time = admission.stream_time
        verdicts.append("jump" if admission.jumped else admission.verdict)
    return stream_time, verdicts, votes


def test_the_first_stream_time_needs_three_users_and_is_their_median() -> None:
    # A first event 12 h ahead cannot set the stream time.
    stream_time, verdicts, _ = feed([(1, T0 + 12 * HOUR), (2, T0), (2, T0 + 5), (3, T0 + 10), (4, T0 + 20)])
    assert verdicts == ["normal", "normal", "normal", "jump", "normal"] and stream_time == T0 + 20


def test_small_steps_move_the_stream_time_like_a_maximum() -> None:
    events = [(1, T0), (2, T0 + 1), (3, T0 + 2), (4, T0 + 900), (5, T0 + 500), (6, T0 + 1800)]
    stream_time, verdicts, votes = feed(events)
    assert stream_time == T0 + 1800 and verdicts[3:] == ["normal"] * 3 and votes == []


def test_wrong_clocks_among_on_time_traffic_never_move_the_stream_time() -> None:
    events = []
    for k in range(1, 40):
        events.append((100 + k, T0 + 100 * k))  # on-time traffic of many users
        if k % 2 == 0:
            events.append((1, T0 + 100 * k + 30_000))  # a clock 30 s ahead: joined, never moves it
        if k % 5 == 0:
            events.append((2, T0 + 100 * k + 12 * HOUR))  # 12 h ahead: dead-lettered
    stream_time, verdicts, _ = feed(events, start=T0)
    assert stream_time == T0 + 3900
    assert verdicts.count("ahead") == 19 and verdicts.count("too_far") == 7 and "jump" not in verdicts


def test_one_device_alone_never_moves_the_stream_time() -> None:
    stream_time, verdicts, votes = feed([(1, T0 + 30_000 + k) for k in range(20)], start=T0)
    assert stream_time == T0 and set(verdicts) == {"ahead"} and votes == [[1, T0 + 30_019]]


def test_traffic_that_moved_on_after_a_gap_moves_the_stream_time_once_three_users_agree() -> None:
    gap = [(1, T0 + 120_000), (1, T0 + 120_010), (2, T0 + 120_050), (3, T0 + 120_100), (4, T0 + 120_200)]
    stream_time, verdicts, votes = feed(gap, start=T0)
    # Beyond max_ahead (60 s): the first votes are dead-lettered; the third user's event jumps to
    # the median of the three users' votes, and is on time there.
    assert verdicts == ["too_far", "too_far", "too_far", "jump", "normal"]
    assert stream_time == T0 + 120_200 and votes == []


def test_the_jump_goes_to_the_median_so_one_wrong_voter_cannot_drag_it() -> None:
    events = [(1, T0 + 10_000), (9, T0 + 12 * HOUR), (2, T0 + 10_100)]
    stream_time, verdicts, _ = feed(events, start=T0)
    assert stream_time == T0 + 10_100 and verdicts == ["ahead", "too_far", "jump"]
    events = [(1, T0 + 10_000), (2, T0 + 10_100), (9, T0 + 12 * HOUR)]  # the wrong one completes the quorum
    stream_time, verdicts, _ = feed(events, start=T0)
    assert stream_time == T0 + 10_100 and verdicts == ["ahead", "ahead", "jump"]


def test_votes_are_forgotten_on_on_time_traffic_but_not_on_late_events() -> None:
    stream_time, _, votes = feed([(1, T0 + 5_000), (2, T0 + 5_100), (3, T0 + 10)], start=T0)
    assert votes == [] and stream_time == T0 + 10
    stream_time, verdicts, _ = feed([(1, T0 + 5_000), (2, T0 + 5_100), (3, T0 - 9_000), (4, T0 + 5_200)], start=T0)
    assert verdicts[-1] == "jump" and stream_time == T0 + 5_200


def test_step_zero_is_no_guard() -> None:
    stream_time, verdicts, _ = feed([(1, T0), (1, T0 + 10**9)], ClockSkewPolicy(0, 0, 1, 0))
    assert stream_time == T0 + 10**9 and verdicts == ["normal", "normal"]
