"""How many calls a provider gets at once from this worker, learned from how it answers.

Nobody knows a hosted provider's real capacity: it depends on the account tier, the model and
the hour. A fixed ``concurrency`` is either too low (measured: 4 calls in flight against a
provider that would take 256, so 2 assets/s instead of 64) or too high (a burst of 429s paid for
in retries). The limit here is found like TCP finds a path's capacity:

- **slow start**: from ``initial``, each call the provider accepted while the limit was in use
  adds 1 until the first sign of overload. A call counts as accepted when it succeeds, or when
  it has been in flight for :data:`ACCEPTED_AFTER_S` without being refused: a provider with no
  room says so at once (a 429 in milliseconds to a few hundred), while the calls it took run
  for seconds, so the limit need not wait a whole call to learn that a call was taken. It
  doubles every ``ACCEPTED_AFTER_S`` instead of every round trip: from 32 to a provider's 256
  slots in 1.5 s instead of 6 s at 2 s a call (``python -m bench.providers``, throughput). A
  provider that queues instead of refusing is caught by the latency rule below, and one that
  refuses slowly by the refusal rule, which measures from what is still in flight;
- **additive increase**: after that, each such success adds ``1 / limit`` (one per round trip);
- **multiplicative decrease on a refusal**: a 429 (or a 503) comes back in milliseconds while
  the calls the provider took take seconds, so when a refusal returns, the calls still in flight
  beside it are what the provider holds for this worker; the limit drops to 95% of them. A
  burst's refusals each drop it again, from fewer calls each time, and no slot is granted
  while the limit is below the calls in flight, so an overshoot costs the calls already sent
  past the provider's room and no more. Measured before: cutting from the calls in flight when
  the refused call *started* counted the burst's other refused calls as taken, and a first wave
  of 64 against a provider of 16 slots became a storm of 735 429s; halving on every 429, as TCP
  does on a loss, left a worker at about half of a 256-slot provider for minutes after a single
  429 (``python -m bench.providers``: 58 assets/s where 128 were possible);
- **multiplicative decrease on a timeout or a rising latency**: a timeout halves the limit (never
  below 90% of the calls in flight beside it when it was sent), a rising latency (the recent
  average above ``latency_tolerance`` times the long-run average) cuts it by a fifth; at most
  once per round trip, since one overshoot yields a burst of such answers;
- **fast recovery**: after a cut to less than half of where it struck (a provider refusing
  everything for a while, as a per-minute quota does, or a timeout's halving), other than the
  one ending slow start (whose doubling overshot), the limit grows by 1 per success again
  (doubling per round trip) up to 90% of where the overload struck, then additively. Additive
  growth alone from half of a provider's 256 slots back to 256 takes 128 round trips (over four
  minutes at 2 s a call): a campaign would run at about 60% of what the provider allows.

The limit stays within ``[1, maximum]``; ``maximum`` is the routing file's ``max_in_flight`` of
the provider, else :data:`DEFAULT_MAX_IN_FLIGHT`. Callers waiting for a slot are served in the
line's order (priority, then fair share by tenant: :class:`streams.fair_queue.FairQueue`), so a
hero asset does not queue behind a campaign at the provider either; an urgent (HIGH) call may
also take a small reserve above a full limit, within the room the provider showed at its
latest refusal (:meth:`AdaptiveLimit.reserve`).

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
#: The first wave is sent before any answer: against a provider of 16 slots, 32 costs 16 429s
#: once (each retried after its Retry-After), and every doubling it saves is a round trip of
#: 2-120 s at full speed for a larger provider.
DEFAULT_INITIAL: Final = 32
#: In slow start, a call in flight this long without a refusal was taken by the provider.
ACCEPTED_AFTER_S: Final = 0.5
#: A refusal cuts the limit to this share of the calls the provider still held beside it: the
#: margin additive growth probes back over (a refusal every 0.05 x 256 round trips against a
#: 256-slot provider). 0.9 left a 3,000-request run at 90% of the provider for its rest.
REFUSAL_CUT: Final = 0.95
#: Recent latency above this multiple of the long-run average counts as overload.
DEFAULT_LATENCY_TOLERANCE: Final = 2.0
#: Weights of the recent and the long-run latency averages (exponential moving averages).
_SHORT_WEIGHT: Final = 0.2
_LONG_WEIGHT: Final = 0.02
#: Latency samples before the latency rule may act (the long-run average needs a few).
_MIN_SAMPLES: Final = 20


class Signal(Enum):
    """What one call's answer says about the provider's load."""

    OK = "ok"  # it answered (with an asset, a content refusal or a request error)
    REFUSED = "refused"  # 429, 503: no room now, said at once
    OVERLOAD = "overload"  # a timeout
    IGNORE = "ignore"  # no verdict (cancelled by the request's deadline, connection refused)


@dataclass
class _Waiter:
    future: asyncio.Future[None]


class Permit:
    """One slot; say how the call went with :meth:`done` (the context manager releases it)."""

    __slots__ = ("_accepted", "_limit", "_seen", "_signal", "_started", "_timer", "_utilised")

    def __init__(self, limit: AdaptiveLimit, started: float, utilised: bool, seen: int) -> None:
        self._limit = limit
        self._started = started
        #: Calls in flight when this one started, itself included.
        self._seen = seen
        #: The limit was in use when this call started: its success may raise the limit.
        self._utilised = utilised
        self._signal: Signal = Signal.IGNORE
        #: Counted as accepted by slow start already (its success adds nothing more).
        self._accepted = False
        self._timer: asyncio.TimerHandle | None = None

    def done(self, signal: Signal) -> None:
        self._signal = signal

    def _release(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        latency = self._limit._clock() - self._started
        self._limit._release(self._signal, latency, self._utilised, self._seen, self._accepted)


class AdaptiveLimit:
    """The in-flight limit of one provider for one worker (see the module docstring)."""

    def __init__(
        self,
        name: str,
        *,
        initial: int = DEFAULT_INITIAL,
        maximum: int = DEFAULT_MAX_IN_FLIGHT,
        latency_tolerance: float = DEFAULT_LATENCY_TOLERANCE,
        accepted_after_s: float = ACCEPTED_AFTER_S,
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
        self._accepted_after_s = accepted_after_s
        self._clock = clock
        self._on_change = on_change
        self._waiters: FairQueue[_Waiter] = FairQueue(weight)
        self._short = 0.0
        self._long = 0.0
        self._samples = 0
        self._last_decrease = float("-inf")
        #: The limit when the latest run of refusals began (where the overload struck), and
        #: whether that run ended slow start.
        self._struck_at = self.limit
        self._struck_in_slow_start = False
        #: The calls the provider held at its latest refusal: what urgent calls may fill.
        self._room: int | None = None
        self.decreases = 0

    def reserve(self) -> int:
        """Slots above the limit that urgent calls may take: a tenth of it, at least 2.

        In slow start, up to the limit again (never past ``maximum``): the limit is still a
        probe that doubles within the round trip, not a capacity the provider has shown. With
        2 as the reserve there, 20 HIGH requests submitted while a fresh worker's limit ramped
        from 16 queued for each other's slots (bench.providers priority, issue 16).

        Never past the room the provider showed at its latest refusal: above it an urgent call
        is refused in turn and waits out ``Retry-After`` (bench.providers priority-waiting: 5 of
        20 HIGH calls refused past a full 256-slot provider, p99 4.19 s). Within the room a
        HIGH call is first in line for the next slot, which frees every few ms at that size.
        """
        reserve = max(2, int(self.limit * 0.1))
        if self.slow_start:
            probe = min(int(self.limit), self.maximum - int(self.limit))
            reserve = max(reserve, probe)
        if self._room is not None:
            reserve = min(reserve, max(0, self._room - int(self.limit)))
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
        if self.slow_start:
            permit._timer = asyncio.get_running_loop().call_later(
                self._accepted_after_s, self._accepted, permit
            )
        try:
            yield permit
        finally:
            permit._release()

    # --- learning ----------------------------------------------------------------------------

    def _release(
        self, signal: Signal, latency_s: float, utilised: bool, seen: int, counted: bool = False
    ) -> None:
        """One call ended; ``counted``: slow start already grew on it (:meth:`_accepted`)."""
        # In use at the call's start or its end: a burst that fills the limit counts whole.
        utilised = not counted and (utilised or self.in_flight >= self.limit * 0.5)
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
        elif signal is Signal.REFUSED:
            self._refused(latency_s)
        elif signal is Signal.OVERLOAD:
            self._decrease(0.5, latency_s, taken=seen - 1)
        if self.limit != before and self._on_change is not None:
            self._on_change(self.name, self.limit)
        self._grant()

    def _accepted(self, permit: Permit) -> None:
        """A call still in flight, unrefused, after ``accepted_after_s``: the provider took it."""
        permit._timer = None
        if not self.slow_start:
            return
        permit._accepted = True
        if permit._utilised or self.in_flight >= self.limit * 0.5:
            before = self.limit
            self.limit = min(float(self.maximum), self.limit + 1.0)
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
        struck_at = self._struck_at = self.limit
        self._struck_in_slow_start = overshoot
        self.limit = max(1.0, min(self.limit, max(self.limit * factor, 0.9 * taken)))
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

    def _refused(self, latency_s: float) -> None:
        """Down to :data:`REFUSAL_CUT` of the calls still in flight (see the module docstring).

        Not once per round trip like the other cuts: each refusal of a burst measures from the
        calls left in flight, so the cuts do not compound, and the last refusal's measure is
        the truest. A run of refusals counts as one decrease and one overload.
        """
        self._room = self.in_flight  # also when the limit is below the cut: urgent calls above it
        cut = max(1.0, REFUSAL_CUT * self.in_flight)
        if cut >= self.limit:
            return
        now = self._clock()
        if now - self._last_decrease >= max(latency_s, self._short, 0.001):
            self.decreases += 1  # a new run of refusals
            self._struck_at = self.limit
            self._struck_in_slow_start = self.slow_start
        self._last_decrease = now
        self.slow_start = False
        self.limit = cut
        if self._struck_in_slow_start or self.limit >= 0.5 * self._struck_at:
            # A limit just above the provider's room, or a doubling past it: 95% of what it
            # held is about right already; grow additively from it.
            self.recover_to = None
        else:
            self.recover_to = self._struck_at * 0.9

    def _grant(self) -> None:
        while len(self._waiters) and self.in_flight < int(self.limit):
            waiter = self._waiters.pop()
            if waiter.future.done():  # cancelled while waiting
                continue
            self.in_flight += 1
            waiter.future.set_result(None)
