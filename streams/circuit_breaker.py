"""Circuit breaker: stop calling a backend that keeps failing.

One per inference provider (agents/inference/routing/router.py) and one per delivery
destination (agents/deliver/agent.py); here, in the runtime layer, because both stages use it.
A dead provider otherwise costs every request its full timeout before failover. After
``failure_threshold`` consecutive failures the breaker opens and callers fail over at once;
after ``reset_after_s`` a single probe is let through to find out whether it recovered.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum, auto

#: The ``details`` key of a breaker alert (kind ``BREAKER_OPENED``, the only breaker kind the
#: Alert contract has) that says which way the breaker went: ``open`` or ``closed`` (a
#: ``BreakerState`` value); an alert without it is an opening (written before it existed).
STATE_DETAIL = "state"


class BreakerState(StrEnum):
    """Values are ``closed``, ``open`` and ``half_open`` (the metric's label names)."""

    CLOSED = auto()
    OPEN = auto()
    HALF_OPEN = auto()


class CircuitBreaker:
    """Closed -> open after N consecutive failures -> half-open (one probe) -> closed or open.

    Single-threaded (one asyncio loop); nothing here awaits, so no lock is needed.

    Results reported while OPEN come from calls admitted before it opened; they are ignored so
    late stragglers neither extend the open timer nor close the breaker behind the probe's back.
    In HALF_OPEN any reported result is taken as the probe's verdict (the API has no call ids).
    """

    def __init__(
        self,
        name: str,
        failure_threshold: int = 5,
        reset_after_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold}")
        if not reset_after_s >= 0:
            raise ValueError(f"reset_after_s must be >= 0, got {reset_after_s!r}")
        self.name = name
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probe_in_flight = False
        #: Open (or half-open) only because a peer's breaker opened (see :meth:`trip`).
        self._by_peer = False

    @property
    def state(self) -> BreakerState:
        """Current state; reading it moves OPEN to HALF_OPEN once ``reset_after_s`` is up."""
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= (
            self.reset_after_s
        ):
            self._probe_in_flight = False
            self._transition(BreakerState.HALF_OPEN)
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def allow(self) -> bool:
        """May a call go out now? In HALF_OPEN this takes the single probe slot."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.OPEN or self._probe_in_flight:
            return False
        self._probe_in_flight = True
        return True

    def retry_in_s(self) -> float:
        """Seconds until a probe will be admitted; 0 when not open."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self._opened_at + self.reset_after_s - self._clock())

    def record_success(self) -> None:
        """The provider answered: reset the failure streak, or close after a good probe."""
        state = self.state
        if state is BreakerState.CLOSED:
            self._failures = 0
        elif state is BreakerState.HALF_OPEN:
            self._failures = 0
            self._probe_in_flight = False
            self._transition(BreakerState.CLOSED)

    def record_failure(self) -> None:
        """The provider failed: extend the streak, or re-open (fresh timer) after a bad probe."""
        state = self.state
        if state is BreakerState.CLOSED:
            self._failures += 1
            if self._failures >= self.failure_threshold:
                self._open()
        elif state is BreakerState.HALF_OPEN:
            self._failures += 1
            self._open()

    def release(self) -> None:
        """An admitted call ended without a verdict (e.g. cancelled by a latency budget).

        Chosen: no verdict. The probe slot is freed and the breaker stays HALF_OPEN, so the next
        ``allow()`` admits a fresh probe; a healthy provider is not punished for a cancel that
        was the caller's doing. A provider that hangs still gets opened, by its own call
        timeouts, which are reported as failures. In CLOSED or OPEN this is a no-op.
        """
        if self.state is BreakerState.HALF_OPEN:
            self._probe_in_flight = False

    def trip(self, opened_ago_s: float = 0.0) -> bool:
        """Open because another worker of the group opened its breaker of the same provider
        ``opened_ago_s`` ago (so the group stops calling it together), for what is left of
        ``reset_after_s``. No change callback: the peer has raised the alert. False when
        already open or the peer's opening is older than ``reset_after_s``; a probe in flight
        is superseded (its result, reported while OPEN, is ignored)."""
        opened_ago_s = max(0.0, opened_ago_s)
        if opened_ago_s >= self.reset_after_s or self.state is BreakerState.OPEN:
            return False
        self._opened_at = self._clock() - opened_ago_s
        self._probe_in_flight = False
        self._state = BreakerState.OPEN
        self._by_peer = True
        return True

    def untrip(self, closed_ago_s: float = 0.0) -> bool:
        """Close because another worker's breaker of the same provider closed (its probe
        succeeded) ``closed_ago_s`` ago, when this one is open or half-open only because of a
        peer's opening (:meth:`trip`) that began no later than that close. A breaker that
        opened on its own failures waits for its own probe. No change callback: the peer has
        raised the alert. True when it closed; a probe in flight is let go (its answer,
        reported while CLOSED, counts as an ordinary call's)."""
        state = self.state
        if not self._by_peer or state is BreakerState.CLOSED:
            return False
        if self._opened_at > self._clock() - max(0.0, closed_ago_s):
            return False  # a later opening than the close we heard of
        self._failures = 0
        self._probe_in_flight = False
        self._state = BreakerState.CLOSED
        self._by_peer = False
        return True

    def _open(self) -> None:
        self._opened_at = self._clock()
        self._probe_in_flight = False
        self._by_peer = False
        self._transition(BreakerState.OPEN)

    def _transition(self, new: BreakerState) -> None:
        if new is self._state:
            return
        if new is BreakerState.CLOSED:
            self._by_peer = False
        self._state = new
        if self._on_change is not None:
            self._on_change(self.name, new)

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker({self.name!r}, state={self._state.value}, "
            f"failures={self._failures}/{self.failure_threshold})"
        )
