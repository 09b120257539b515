"""Circuit breaker transitions, driven by a fake clock."""

from __future__ import annotations

import pytest

from streams.circuit_breaker import BreakerState, CircuitBreaker

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Changes:
    """Records on_change calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, BreakerState]] = []

    def __call__(self, name: str, state: BreakerState) -> None:
        self.calls.append((name, state))

    @property
    def states(self) -> list[BreakerState]:
        return [state for _, state in self.calls]


def make(
    threshold: int = 3, reset_after_s: float = 30.0
) -> tuple[CircuitBreaker, FakeClock, Changes]:
    clock, changes = FakeClock(), Changes()
    breaker = CircuitBreaker(
        "p",
        failure_threshold=threshold,
        reset_after_s=reset_after_s,
        clock=clock,
        on_change=changes,
    )
    return breaker, clock, changes


def trip(breaker: CircuitBreaker) -> None:
    for _ in range(breaker.failure_threshold):
        assert breaker.allow()
        breaker.record_failure()
    assert breaker.state is OPEN


def test_state_values_match_metric_labels() -> None:
    assert [s.value for s in BreakerState] == ["closed", "open", "half_open"]


@pytest.mark.parametrize(("threshold", "reset"), [(0, 30.0), (3, -1.0)])
def test_invalid_settings(threshold: int, reset: float) -> None:
    with pytest.raises(ValueError):
        CircuitBreaker("p", failure_threshold=threshold, reset_after_s=reset)


def test_opens_after_threshold_consecutive_failures() -> None:
    breaker, _, changes = make(threshold=3)
    for _ in range(2):
        breaker.record_failure()
        assert breaker.state is CLOSED
        assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is OPEN
    assert changes.calls == [("p", OPEN)]


def test_success_breaks_the_streak() -> None:
    breaker, _, _ = make(threshold=3)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is CLOSED
    assert breaker.consecutive_failures == 2


def test_no_calls_while_open_and_allow_has_no_side_effects() -> None:
    breaker, clock, changes = make(reset_after_s=30.0)
    trip(breaker)
    assert breaker.retry_in_s() == pytest.approx(30.0)
    for _ in range(5):
        assert not breaker.allow()
    clock.advance(29.9)
    assert not breaker.allow()
    assert breaker.state is OPEN
    assert breaker.retry_in_s() == pytest.approx(0.1)
    assert changes.states == [OPEN]


def test_results_of_stragglers_while_open_are_ignored() -> None:
    breaker, clock, _ = make(reset_after_s=30.0)
    trip(breaker)
    clock.advance(20.0)
    breaker.record_failure()  # must not restart the 30 s timer
    breaker.record_success()  # must not close behind the probe's back
    assert breaker.state is OPEN
    assert breaker.retry_in_s() == pytest.approx(10.0)


def test_half_open_admits_a_single_probe() -> None:
    breaker, clock, changes = make(reset_after_s=30.0)
    trip(breaker)
    clock.advance(30.0)
    assert breaker.state is HALF_OPEN  # the transition happens on read
    assert breaker.retry_in_s() == 0.0
    assert breaker.allow()
    assert not breaker.allow()  # a concurrent caller waits for the probe's verdict
    assert not breaker.allow()
    assert changes.states == [OPEN, HALF_OPEN]


def test_allow_itself_moves_open_to_half_open() -> None:
    breaker, clock, changes = make(reset_after_s=30.0)
    trip(breaker)
    clock.advance(45.0)
    assert breaker.allow()
    assert not breaker.allow()
    assert changes.states == [OPEN, HALF_OPEN]


def test_probe_success_closes_and_resets_the_count() -> None:
    breaker, clock, _ = make(threshold=3)
    trip(breaker)
    clock.advance(30.0)
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is CLOSED
    assert breaker.consecutive_failures == 0
    assert all(breaker.allow() for _ in range(5))
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is CLOSED  # a full new streak is needed to open again


def test_probe_failure_reopens_with_a_fresh_timer() -> None:
    breaker, clock, _ = make(reset_after_s=30.0)
    trip(breaker)
    clock.advance(40.0)
    assert breaker.allow()
    clock.advance(5.0)  # the probe took 5 s to fail
    breaker.record_failure()
    assert breaker.state is OPEN
    assert breaker.retry_in_s() == pytest.approx(30.0)
    clock.advance(29.0)
    assert not breaker.allow()
    clock.advance(1.0)
    assert breaker.allow()


def test_release_of_an_abandoned_probe_frees_the_slot() -> None:
    breaker, clock, changes = make(reset_after_s=30.0)
    trip(breaker)
    clock.advance(30.0)
    assert breaker.allow()
    assert not breaker.allow()
    breaker.release()  # e.g. the probe was cancelled by the latency budget
    assert breaker.state is HALF_OPEN  # no verdict either way ...
    assert breaker.allow()  # ... but the next caller may probe
    assert not breaker.allow()
    breaker.record_success()
    assert breaker.state is CLOSED
    assert changes.states == [OPEN, HALF_OPEN, CLOSED]


def test_release_is_a_no_op_when_closed_or_open() -> None:
    breaker, _, changes = make(threshold=2)
    assert breaker.allow()
    breaker.record_failure()
    breaker.release()
    assert breaker.state is CLOSED
    assert breaker.consecutive_failures == 1  # a cancel is not a failure
    breaker.record_failure()
    breaker.release()
    assert breaker.state is OPEN
    assert not breaker.allow()
    assert changes.states == [OPEN]


def test_on_change_sees_every_transition_in_order() -> None:
    breaker, clock, changes = make(threshold=2, reset_after_s=10.0)
    trip(breaker)  # -> open
    clock.advance(10.0)
    assert breaker.allow()  # -> half-open
    breaker.record_failure()  # -> open
    clock.advance(10.0)
    assert breaker.allow()  # -> half-open
    breaker.record_success()  # -> closed
    breaker.record_success()  # no transition
    assert changes.calls == [
        ("p", OPEN),
        ("p", HALF_OPEN),
        ("p", OPEN),
        ("p", HALF_OPEN),
        ("p", CLOSED),
    ]


def test_zero_reset_goes_straight_to_half_open() -> None:
    breaker, _, _ = make(threshold=1, reset_after_s=0.0)
    breaker.record_failure()
    assert breaker.state is HALF_OPEN
    assert breaker.allow()
    assert not breaker.allow()


def test_a_peer_trip_opens_with_a_fresh_timer_and_no_callback() -> None:
    breaker, clock, changes = make(reset_after_s=10.0)
    assert breaker.trip()
    assert breaker.state is OPEN
    assert not breaker.allow()
    assert changes.calls == []  # the peer that opened first raised the alert
    assert not breaker.trip()  # already open: nothing to do
    clock.advance(10.0)
    assert breaker.allow()  # then it probes on its own, as after its own opening
    breaker.record_success()
    assert breaker.state is CLOSED


def test_a_peer_trip_supersedes_a_probe_in_flight() -> None:
    breaker, clock, _ = make(reset_after_s=5.0)
    trip(breaker)
    clock.advance(5.0)
    assert breaker.allow()  # the probe goes out
    assert breaker.trip()
    breaker.record_success()  # the probe's late answer, while OPEN: ignored
    assert breaker.state is OPEN
    assert breaker.retry_in_s() == 5.0


def test_a_peer_closing_closes_a_breaker_a_peer_opened_with_no_callback() -> None:
    breaker, clock, changes = make(reset_after_s=10.0)
    assert not breaker.untrip()  # closed already
    assert breaker.trip()
    clock.advance(4.0)
    assert breaker.untrip()
    assert breaker.state is CLOSED
    assert breaker.allow()
    assert changes.calls == []  # the peer that closed first raised the alert
    assert not breaker.untrip()


def test_a_peer_closing_also_ends_a_half_open_wait_with_its_probe_in_flight() -> None:
    breaker, clock, _ = make(reset_after_s=10.0)
    assert breaker.trip()
    clock.advance(10.0)
    assert breaker.allow()  # our own probe goes out
    assert not breaker.allow()
    assert breaker.untrip()
    assert breaker.allow()  # closed: every call goes
    breaker.record_failure()  # the probe's late answer counts as one ordinary failure
    assert breaker.state is CLOSED
    assert breaker.consecutive_failures == 1


def test_a_breaker_opened_by_its_own_failures_ignores_a_peer_closing() -> None:
    breaker, clock, _ = make(reset_after_s=10.0)
    trip(breaker)
    assert not breaker.untrip()
    assert breaker.state is OPEN
    # Opened by a peer, then its own probe failed: now it is its own opening.
    breaker, clock, _ = make(reset_after_s=10.0)
    assert breaker.trip()
    clock.advance(10.0)
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is OPEN
    assert not breaker.untrip()


def test_a_peer_closing_older_than_the_peer_opening_is_ignored() -> None:
    """Alerts travel on several partitions: a closing may be read after a later opening."""
    breaker, _, _ = make(reset_after_s=10.0)
    assert breaker.trip(opened_ago_s=2.0)
    assert not breaker.untrip(closed_ago_s=3.0)  # closed before this opening began
    assert breaker.state is OPEN
    assert breaker.untrip(closed_ago_s=1.0)
    assert breaker.state is CLOSED


def test_a_peer_trip_keeps_only_what_is_left_of_the_peers_open_time() -> None:
    breaker, clock, _ = make(reset_after_s=10.0)
    assert not breaker.trip(opened_ago_s=10.0)  # the peer's breaker is half-open by now
    assert breaker.state is CLOSED
    assert breaker.trip(opened_ago_s=7.5)
    assert breaker.retry_in_s() == 2.5
    clock.advance(2.5)
    assert breaker.state is HALF_OPEN
