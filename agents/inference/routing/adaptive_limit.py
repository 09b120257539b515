"""How many calls a provider gets at once from this worker, learned from how it answers.

Nobody knows a hosted provider's real capacity: it depends on the account tier, the model and
the hour. A fixed ``concurrency`` is either too low (measured: 4 calls in flight against a
provider that would take 256, so 2 assets/s instead of 64) or too high (a burst of 429s paid for
in retries). The limit here is found like TCP finds a path's capacity:

- **slow start**: from ``initial``, each call that succeeds while the limit was in use adds 1
  (the limit doubles every round trip) until the first sign of overload;
- **additive increase**: after that, each such success adds ``1 / limit`` (one per round trip);
- **multiplicative decrease**: a 429/503 answer or a timeout cuts the limit to 90% of the calls
  that were in flight beside the refused one when it was sent (they were taken: that is what
  the provider holds for this worker), never below half; a rising latency (the recent average
  above ``latency_tolerance`` times the long-run average) cuts it by a fifth; at most once per
  round trip, since one overshoot yields a burst of such answers; between cuts, a refusal still
  holds the limit at the calls the provider held beside it, so a slot a 429 frees in
  milliseconds is not handed straight to the next call to be refused too. Halving on every
  429, as TCP does on a loss, left a worker at about half of a 256-slot provider for minutes
  after a single 429 (``python -m bench.providers``: 58 assets/s where 128 were possible);
- **fast recovery**: after a halving (other than the one ending slow start, whose doubling
  overshot), the limit grows by 1 per success again (doubling per round trip) up to 90% of
  where the overload struck, then additively. Additive growth alone
  from half of a provider's 256 slots back to 256 takes 128 round trips (over four minutes at
  2 s a call): a campaign would run at about 60% of what the provider allows.

The limit stays within ``[1, maximum]``; ``maximum`` is the routing file's ``max_in_flight`` of
the provider, else :data:`DEFAULT_MAX_IN_FLIGHT`. Callers waiting for a slot are served in the
line's order (priority, then fair share by tenant: :class:`streams.fair_queue.FairQueue`), so a
hero asset does not queue behind a campaign at the provider either; an urgent (HIGH) call may
also take a small reserve above a full limit (:meth:`AdaptiveLimit.reserve`).

No well-kept Python library does this (``aiolimiter`` is a fixed-rate leaky bucket; Netflix's
``concurrency-limits`` is Java), so it is written here, small and pure apart from the waiting.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import Enum
from typing import Final

from streams.fair_queue import FairQueue

#: The ceiling of a provider's limit when the routing file names none.
DEFAULT_MAX_IN_FLIGHT: Final = 1024
#: Where every provider's limit starts (slow start doubles it every round trip from there).
#: Higher made a provider of 16 slots answer half of the first wave with 429s, and requests
#: ran out of retries (tests/integration/test_scheduling.py).
DEFAULT_INITIAL: Final = 16
#: Recent latency above this multiple of the long-run average counts as overload.
DEFAULT_LATENCY_TOLERANCE: Final = 2.0
#: Weights of the recent and the long-run latency averages (exponential moving averages).
_SHORT_WEIGHT: Final = 0.2
_LONG_WEIGHT: Final = 0.02
#: Latency samples before the latency rule may act (the long-run average needs a few).
_MIN_SAMPLES: Final = 20


class Signal(Enum):
    """What one call's answer says about the provider's load."""

    OK = "ok"  # it answered (with an asset, a refusal or a request error)
    OVERLOAD = "overload"  # 429, 503 with Retry-After, a timeout
    IGNORE = "ignore"  # no verdict (cancelled by the request's deadline, connection refused)


@dataclass
class _Waiter:
    future: asyncio.Future[None]


class Permit:
    """One slot; say how the call went with :meth:`done` (the context manager releases it)."""

    __slots__ = ("_limit", "_seen", "_signal", "_started", "_utilised")

    def __init__(self, limit: AdaptiveLimit, started: float, utilised: bool, seen: int) -> None:
        self._limit = limit
        self._started = started
        #: Calls in flight when this one started, itself included.
        self._seen = seen
        #: The limit was in use when this call started: its success may raise the limit.
        self._utilised = utilised
        self._signal: Signal = Signal.IGNORE

    def done(self, signal: Signal) -> None:
        self._signal = signal

    def _release(self) -> None:
        latency = self._limit._clock() - self._started
        self._limit._release(self._signal, latency, self._utilised, self._seen)


class AdaptiveLimit:
    """The in-flight limit of one provider for one worker (see the module docstring)."""

    def __init__(
        self,
        name: str,
        *,
        initial: int = DEFAULT_INITIAL,
        maximum: int = DEFAULT_MAX_IN_FLIGHT,
        latency_tolerance: float = DEFAULT_LATENCY_TOLERANCE,
        weight: Callable[[str], float] | None = None,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[str, float], None] | None = None,
    ) -> None:
        if maximum < 1:
            raise ValueError("maximum must be >= 1")
        self.name = name
        self.maximum = maximum
        self.limit = float(min(max(1, initial), maximum))
        self.in_flight = 0
        self.slow_start = True
        #: After an overload: grow fast up to here (90% of the limit the overload struck at).
        self.recover_to: float | None = None
        self._tolerance = latency_tolerance
        self._clock = clock
        self._on_change = on_change
        self._waiters: FairQueue[_Waiter] = FairQueue(weight)
        self._short = 0.0
        self._long = 0.0
        self._samples = 0
        self._last_decrease = float("-inf")
        #: Where the latest cut left the limit (the floor of :meth:`_hold_at`).
        self._cut_to = 1.0
        self.decreases = 0

    def reserve(self) -> int:
        """Slots above the limit that urgent calls may take: a tenth of it, at least 2.

        In slow start, up to the limit again (never past ``maximum``): the limit is still a
        probe that doubles within the round trip, not a capacity the provider has shown. With
        2 as the reserve there, 20 HIGH requests submitted while a fresh worker's limit ramped
        from 16 queued for each other's slots (bench.providers priority, issue 16).
        """
        reserve = max(2, int(self.limit * 0.1))
        if self.slow_start:
            probe = min(int(self.limit), self.maximum - int(self.limit))
            reserve = max(reserve, probe)
        return reserve

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @asynccontextmanager
    async def slot(
        self, *, priority: int = 0, flow: str = "", urgent: bool = False
    ) -> AsyncIterator[Permit]:
        """Hold one of the provider's slots for a call; waits in the line's order for one.

        An ``urgent`` call (a HIGH request: rare by design) may also take one of a small
        reserve above the limit (:meth:`reserve`), so a hero asset does not wait for a campaign's
        calls to finish; if the reserve is in use too, it waits first in line like any HIGH.
        """
        free = self.in_flight < int(self.limit) and not len(self._waiters)
        if free or (urgent and self.in_flight < int(self.limit) + self.reserve()):
            self.in_flight += 1
        else:
            waiter = _Waiter(asyncio.get_running_loop().create_future())
            self._waiters.push(waiter, priority=priority, flow=flow)
            try:
                await waiter.future  # _grant counted us in
            except asyncio.CancelledError:
                if waiter.future.done() and not waiter.future.cancelled():
                    self._release(Signal.IGNORE, 0.0, False, 0)  # granted, then cancelled
                else:
                    self._waiters.remove_if(lambda w: w is waiter)
                raise
        permit = Permit(self, self._clock(), self.in_flight >= self.limit * 0.5, self.in_flight)
        try:
            yield permit
        finally:
            permit._release()

    # --- learning ----------------------------------------------------------------------------

    def _release(self, signal: Signal, latency_s: float, utilised: bool, seen: int) -> None:
        # In use at the call's start or its end: a burst that fills the limit counts whole.
        utilised = utilised or self.in_flight >= self.limit * 0.5
        self.in_flight -= 1
        before = self.limit
        if signal is Signal.OK:
            self._observe(latency_s)
            if self._rising():
                self._decrease(0.8, latency_s)
            elif utilised:
                fast = self.slow_start or (
                    self.recover_to is not None and self.limit < self.recover_to
                )
                step = 1.0 if fast else 1.0 / self.limit
                self.limit = min(float(self.maximum), self.limit + step)
        elif signal is Signal.OVERLOAD:
            self._decrease(0.5, latency_s, taken=seen - 1)
            self._hold_at(seen - 1)
        if self.limit != before and self._on_change is not None:
            self._on_change(self.name, self.limit)
        self._grant()

    def _observe(self, latency_s: float) -> None:
        if self._samples == 0:
            self._short = self._long = latency_s
        else:
            self._short += _SHORT_WEIGHT * (latency_s - self._short)
            self._long += _LONG_WEIGHT * (latency_s - self._long)
        self._samples += 1

    def _rising(self) -> bool:
        return self._samples >= _MIN_SAMPLES and self._short > self._tolerance * self._long

    def _decrease(self, factor: float, latency_s: float, *, taken: int = 0) -> None:
        """Cut to ``factor`` of the limit, or to 90% of ``taken`` (the calls the provider held
        beside a refused one) when that is more, never above the limit."""
        now = self._clock()
        round_trip = max(latency_s, self._short, 0.001)
        if now - self._last_decrease < round_trip:
            return  # the same overshoot answering: one cut per round trip
        self._last_decrease = now
        overshoot = self.slow_start  # doubling overshoots up to twice what the provider takes
        self.slow_start = False
        struck_at = self.limit
        self.limit = max(1.0, min(self.limit, max(self.limit * factor, 0.9 * taken)))
        self._cut_to = self.limit
        self.decreases += 1
        if factor >= 0.8:
            # Latency: the provider slows as it fills; no fast way back to where it did.
            self.recover_to = None
            # The long-run average follows, or one slow spell would cut the limit forever.
            self._long = self._short
        elif overshoot:
            self.recover_to = None  # halved is about right already; grow additively from it
        else:
            self.recover_to = struck_at * 0.9

    def _hold_at(self, taken: int) -> None:
        """Never above the calls the provider held beside a refused one, also between cuts.

        A refusal comes back in milliseconds and frees its slot at once. With the limit one
        above what the provider holds, every freed slot went to the next waiter, which was
        refused in turn: measured with 300 requests waiting on a provider of 16 slots, 501
        429s in 8 s that used up 90 requests' retries (tests/integration/test_scheduling.py),
        while the cut waited out its round trip. So the limit drops to what was taken now; the
        cut once per round trip still decides how far below it goes.
        """
        if taken >= 1 and self.limit > taken:
            # Not below the latest cut: in a burst where every call is refused, "taken" counts
            # calls that were refused too, and the cut (never below half) already decided.
            self.limit = max(self._cut_to, float(taken))

    def _grant(self) -> None:
        while len(self._waiters) and self.in_flight < int(self.limit):
            waiter = self._waiters.pop()
            if waiter.future.done():  # cancelled while waiting
                continue
            self.in_flight += 1
            waiter.future.set_result(None)
