"""Token bucket: burst, refill, reservations under concurrency, up-front timeouts.

A fake clock and a fake sleep that advances it stand in for time, so nothing sleeps for real.
"""

from __future__ import annotations

import asyncio

import pytest

from agents.inference.routing.rate_limit import RateLimitTimeout, TokenBucket


class FakeClock:
    """``now`` only moves through ``advance`` or ``sleep``."""

    def __init__(self, now: float = 100.0) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """Yield once, then wake at the deadline fixed when the sleep began.

        Concurrent sleepers therefore end at their own deadlines (the clock only moves forward),
        as they would under a real event loop.
        """
        self.sleeps.append(seconds)
        wake_at = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, wake_at)


def make(rate: float, burst: int) -> tuple[TokenBucket, FakeClock]:
    clock = FakeClock()
    return TokenBucket(rate, burst, clock=clock, sleep=clock.sleep), clock


@pytest.mark.parametrize(("rate", "burst"), [(0.0, 1), (-1.0, 1), (1.0, 0), (float("nan"), 1)])
def test_invalid_settings(rate: float, burst: int) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, burst)


def test_burst_then_refill_rate() -> None:
    bucket, clock = make(rate=2.0, burst=3)
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]
    assert bucket.wait_time() == pytest.approx(0.5)
    clock.advance(0.25)
    assert not bucket.try_acquire()
    assert bucket.wait_time() == pytest.approx(0.25)
    clock.advance(0.25)
    assert bucket.try_acquire()
    assert not bucket.try_acquire()


def test_refill_is_capped_at_burst() -> None:
    bucket, clock = make(rate=2.0, burst=3)
    assert bucket.try_acquire()
    clock.advance(3600.0)
    assert bucket.tokens == 3.0
    assert [bucket.try_acquire() for _ in range(4)] == [True, True, True, False]


def test_acquire_with_a_token_free_does_not_sleep() -> None:
    bucket, clock = make(rate=1.0, burst=2)
    assert asyncio.run(bucket.acquire()) == 0.0
    assert asyncio.run(bucket.acquire(max_wait_s=0.0)) == 0.0
    assert clock.sleeps == []


def test_acquire_waits_for_the_next_token() -> None:
    bucket, clock = make(rate=4.0, burst=1)
    assert bucket.try_acquire()
    assert asyncio.run(bucket.acquire()) == pytest.approx(0.25)
    assert clock.sleeps == pytest.approx([0.25])
    assert not bucket.try_acquire()  # the woken waiter used the refilled token


def test_reservations_under_50_concurrent_acquirers() -> None:
    rate, burst, callers = 10.0, 5, 50
    bucket, clock = make(rate=rate, burst=burst)
    start = clock.now

    async def run() -> list[float]:
        return await asyncio.gather(*(bucket.acquire() for _ in range(callers)))

    waited = asyncio.run(run())
    # The burst goes at once; every later caller is queued 1/rate behind the previous one.
    expected = [0.0] * burst + [k / rate for k in range(1, callers - burst + 1)]
    assert sorted(waited) == pytest.approx(expected)
    assert sum(waited) == pytest.approx(sum(expected))  # 103.5 s in total, not 45 x 0.1
    assert clock.now - start == pytest.approx((callers - burst) / rate)
    assert len(clock.sleeps) == callers - burst
    # Nothing was over-drawn: 50 tokens in 4.5 s is exactly burst + rate * 4.5.
    assert bucket.tokens == pytest.approx(0.0, abs=1e-9)
    assert not bucket.try_acquire()


def test_max_wait_raises_up_front_without_sleeping_or_reserving() -> None:
    bucket, clock = make(rate=2.0, burst=1)
    assert bucket.try_acquire()
    before = clock.now
    with pytest.raises(RateLimitTimeout) as info:
        asyncio.run(bucket.acquire(max_wait_s=0.1))
    assert info.value.wait_s == pytest.approx(0.5)
    assert info.value.max_wait_s == 0.1
    assert clock.sleeps == []
    assert clock.now == before
    assert bucket.wait_time() == pytest.approx(0.5)  # no reservation left behind


def test_max_wait_counts_the_queue_ahead() -> None:
    bucket, clock = make(rate=2.0, burst=1)

    async def run() -> None:
        first = asyncio.create_task(bucket.acquire())  # the burst token
        second = asyncio.create_task(bucket.acquire())  # reserves the token due at 0.5 s
        await asyncio.sleep(0)
        with pytest.raises(RateLimitTimeout):
            await bucket.acquire(max_wait_s=0.75)  # next free token is 1.0 s away
        assert await bucket.acquire(max_wait_s=1.0) == pytest.approx(1.0)
        await asyncio.gather(first, second)

    asyncio.run(run())
    assert clock.sleeps == pytest.approx([0.5, 1.0])


def test_cancelled_waiter_hands_its_reservation_back() -> None:
    clock = FakeClock()

    async def stuck(seconds: float) -> None:
        await asyncio.Event().wait()  # never set: only a cancel ends this sleep

    bucket = TokenBucket(2.0, 1, clock=clock, sleep=stuck)
    assert bucket.try_acquire()

    async def run() -> None:
        waiter = asyncio.create_task(bucket.acquire())
        await asyncio.sleep(0)
        assert bucket.tokens == pytest.approx(-1.0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(run())
    assert bucket.tokens == pytest.approx(0.0)
    assert bucket.wait_time() == pytest.approx(0.5)


def test_real_clock_and_sleep_defaults() -> None:
    bucket = TokenBucket(1000.0, 1)  # a 1 ms wait at most
    assert bucket.try_acquire()
    assert asyncio.run(bucket.acquire()) >= 0.0


def test_a_share_of_the_limit_scales_rate_and_burst() -> None:
    bucket, clock = make(rate=10.0, burst=8)
    bucket.set_share(1 / 4)  # four workers split the provider's limit
    assert bucket.rate_per_s == pytest.approx(2.5)
    assert bucket.burst == 2
    assert bucket.tokens == 2  # tokens above the new burst are dropped
    assert [bucket.try_acquire() for _ in range(3)] == [True, True, False]
    clock.advance(0.4)
    assert bucket.try_acquire()
    bucket.set_share(1.0)  # back to the whole limit when the others leave
    assert (bucket.rate_per_s, bucket.burst) == (10.0, 8)
    assert (bucket.limit_per_s, bucket.limit_burst) == (10.0, 8)


def test_a_tiny_share_keeps_a_burst_of_one() -> None:
    bucket, _ = make(rate=1.0, burst=3)
    bucket.set_share(1 / 10)
    assert bucket.burst == 1
    assert bucket.rate_per_s == pytest.approx(0.1)


@pytest.mark.parametrize("share", [0.0, -0.5, 1.5])
def test_invalid_share(share: float) -> None:
    bucket, _ = make(rate=1.0, burst=1)
    with pytest.raises(ValueError):
        bucket.set_share(share)
