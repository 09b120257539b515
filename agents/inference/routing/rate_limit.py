"""Client-side rate limit per provider: a token bucket with reservations.

Staying under a provider's quota is cheaper than collecting its 429s. Waiters reserve their
token before sleeping (the balance may go negative), so N concurrent acquirers queue up at
``1 / rate`` intervals instead of all waking together and over-drawing the bucket.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from schemas.errors import AssetlineError


class RateLimitTimeout(AssetlineError):
    """Getting a token would take longer than the caller is willing to wait."""

    code = "ratelimit.wait_exceeds_budget"

    def __init__(self, wait_s: float, max_wait_s: float) -> None:
        super().__init__(f"rate limit: next token in {wait_s:.3f}s, may wait {max_wait_s:.3f}s")
        self.wait_s = wait_s
        self.max_wait_s = max_wait_s


class TokenBucket:
    """``burst`` tokens, refilled at ``rate_per_s``; starts full."""

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if not rate_per_s > 0:
            raise ValueError(f"rate_per_s must be > 0, got {rate_per_s!r}")
        if burst < 1:
            raise ValueError(f"burst must be >= 1, got {burst}")
        self.rate_per_s = rate_per_s
        self.burst = burst
        #: The provider's whole limit; ``rate_per_s``/``burst`` are this worker's share of it.
        self.limit_per_s = rate_per_s
        self.limit_burst = burst
        self.share = 1.0
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._updated = clock()

    @property
    def tokens(self) -> float:
        """Current balance; negative while waiters hold reservations."""
        self._refill()
        return self._tokens

    def try_acquire(self) -> bool:
        """Take a token if one is there now; never waits and never reserves."""
        self._refill()
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    def wait_time(self) -> float:
        """Seconds until a token is free for a new caller (behind any reservations)."""
        self._refill()
        return max(0.0, (1 - self._tokens) / self.rate_per_s)

    async def acquire(self, max_wait_s: float | None = None) -> float:
        """Wait for a token and return the seconds waited.

        Raises ``RateLimitTimeout`` up front, without sleeping or reserving, when the wait would
        exceed ``max_wait_s``. A waiter cancelled while asleep hands its reservation back.
        """
        wait = self.wait_time()
        if max_wait_s is not None and wait > max_wait_s:
            raise RateLimitTimeout(wait, max_wait_s)
        self._tokens -= 1  # reserve now, so later callers queue behind this one
        if wait <= 0:
            return 0.0
        started = self._clock()
        try:
            await self._sleep(wait)
        except asyncio.CancelledError:
            self._refill()
            self._tokens = min(float(self.burst), self._tokens + 1)
            raise
        return self._clock() - started

    def set_share(self, share: float) -> None:
        """Take ``share`` (0 < share <= 1) of the provider's limit: the group splits one limit
        between its workers (``share = 1 / workers``). The burst shrinks with it (at least 1),
        and tokens above the new burst are dropped; reservations already made stand."""
        if not 0 < share <= 1:
            raise ValueError(f"share must be in (0, 1], got {share!r}")
        self._refill()
        self.share = share
        self.rate_per_s = self.limit_per_s * share
        self.burst = max(1, int(self.limit_burst * share))
        self._tokens = min(self._tokens, float(self.burst))

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._updated
        if elapsed > 0:
            self._tokens = min(float(self.burst), self._tokens + elapsed * self.rate_per_s)
            self._updated = now

    def __repr__(self) -> str:
        return f"TokenBucket(rate_per_s={self.rate_per_s}, burst={self.burst})"
