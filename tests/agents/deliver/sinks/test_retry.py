"""Retry with exponential backoff and full jitter; sleeps are injected, never waited for."""

from __future__ import annotations

import asyncio
import random
from pathlib import PurePosixPath

import pytest

from agents.deliver.sinks import PATH_TAKEN, SinkError, write_with_retry
from agents.deliver.sinks._base import path_taken
from agents.deliver.sinks.retry import RetryingSink, backoff_cap


class Flaky:
    """Fails with the given errors in order, then returns the location."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "loc://done"


class Sleeps:
    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)


def retryable(n: int) -> SinkError:
    return SinkError("sink.test.unavailable", f"failure {n}", retryable=True)


def test_retries_retryable_errors_until_success() -> None:
    call, sleeps = Flaky(retryable(1), retryable(2)), Sleeps()

    assert asyncio.run(write_with_retry(call, 5, 1.0, sleeps)) == "loc://done"

    assert call.calls == 3
    assert len(sleeps.delays) == 2


def test_reraises_the_last_error_when_attempts_run_out() -> None:
    call, sleeps = Flaky(retryable(1), retryable(2), retryable(3)), Sleeps()

    with pytest.raises(SinkError, match="failure 3"):
        asyncio.run(write_with_retry(call, 3, 1.0, sleeps))

    assert call.calls == 3
    assert len(sleeps.delays) == 2  # no sleep after the last attempt


def test_a_final_error_is_not_retried() -> None:
    final = SinkError("sink.test.rejected", "no", retryable=False)
    call, sleeps = Flaky(final), Sleeps()

    with pytest.raises(SinkError) as caught:
        asyncio.run(write_with_retry(call, 5, 1.0, sleeps))

    assert caught.value is final
    assert call.calls == 1
    assert sleeps.delays == []


def test_other_exceptions_are_not_retried() -> None:
    call, sleeps = Flaky(RuntimeError("bug")), Sleeps()

    with pytest.raises(RuntimeError):
        asyncio.run(write_with_retry(call, 5, 1.0, sleeps))

    assert call.calls == 1


def test_delays_are_full_jitter_below_an_exponential_cap() -> None:
    call, sleeps = Flaky(*(retryable(n) for n in range(6))), Sleeps()

    asyncio.run(write_with_retry(call, 7, 0.5, sleeps, max_delay_s=4.0, rng=random.Random(7)))

    caps = [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert [backoff_cap(n, 0.5, 4.0) for n in range(6)] == caps
    assert len(sleeps.delays) == 6
    assert all(0.0 <= delay <= cap for delay, cap in zip(sleeps.delays, caps, strict=True))
    # jitter: the same seed draws the same delays, and they are not simply the caps
    again = Sleeps()
    asyncio.run(
        write_with_retry(
            Flaky(*(retryable(n) for n in range(6))),
            7,
            0.5,
            again,
            max_delay_s=4.0,
            rng=random.Random(7),
        )
    )
    assert again.delays == sleeps.delays
    assert sleeps.delays != caps


@pytest.mark.parametrize(("attempts", "base"), [(0, 1.0), (3, -1.0)])
def test_bad_arguments_are_refused(attempts: int, base: float) -> None:
    with pytest.raises(ValueError):
        asyncio.run(write_with_retry(Flaky(), attempts, base))


class _Flaky:
    """Fails with ``errors`` in turn, then lands."""

    def __init__(self, *errors: SinkError) -> None:
        self.errors = list(errors)
        self.calls = 0

    async def write(self, path: PurePosixPath, data: bytes, media_type: str) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return f"mem://{path}"

    async def create(self, path: PurePosixPath, data: bytes, media_type: str) -> str:
        return "created " + await self.write(path, data, media_type)


def test_retrying_sink_retries_retryable_failures_then_lands() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    flaky = _Flaky(SinkError("sink.http.unavailable", "503"), SinkError("sink.http.timeout", "t"))
    sink = RetryingSink(flaky, 4, 0.5, sleep=sleep)
    location = asyncio.run(sink.write(PurePosixPath("a/b.png"), b"x", "image/png"))
    assert location == "mem://a/b.png"
    assert flaky.calls == 3
    assert len(slept) == 2
    assert all(0 <= s <= 1.0 for s in slept)


def test_retrying_sink_gives_up_at_once_on_a_final_failure() -> None:
    flaky = _Flaky(SinkError("sink.http.rejected", "400", retryable=False))
    sink = RetryingSink(flaky, 4, 0.5)
    with pytest.raises(SinkError, match="400"):
        asyncio.run(sink.write(PurePosixPath("a/b.png"), b"x", "image/png"))
    assert flaky.calls == 1


def test_retrying_sink_create_retries_but_a_taken_path_is_final() -> None:
    """A name holding other bytes will not be free next time: no retry, the caller moves on."""

    async def sleep(seconds: float) -> None:
        return None

    flaky = _Flaky(SinkError("sink.s3.unavailable", "503"))
    sink = RetryingSink(flaky, 4, 0.5, sleep=sleep)
    assert asyncio.run(sink.create(PurePosixPath("a/b.png"), b"x", "image/png")) == (
        "created mem://a/b.png"
    )
    assert flaky.calls == 2

    taken = _Flaky(path_taken(PurePosixPath("a/b.png")))
    with pytest.raises(SinkError) as caught:
        asyncio.run(
            RetryingSink(taken, 4, 0.5, sleep=sleep).create(
                PurePosixPath("a/b.png"), b"x", "image/png"
            )
        )
    assert caught.value.code == PATH_TAKEN
    assert taken.calls == 1


@pytest.mark.parametrize(("retry_after", "expected"), [(3.0, 3.0), (100.0, 10.0), (0.0, None)])
def test_a_retry_after_is_waited_up_to_the_cap(retry_after: float, expected: float | None) -> None:
    """A throttling receiver's Retry-After wins over a shorter draw, never over max_delay_s."""
    slept: list[float] = []
    calls = 0

    async def sleep(delay: float) -> None:
        slept.append(delay)

    async def throttled_once() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise SinkError("sink.api.throttled", "429", retry_after_s=retry_after)
        return "done"

    result = asyncio.run(
        write_with_retry(throttled_once, 3, 0.5, sleep, max_delay_s=10.0, rng=random.Random(7))
    )
    assert result == "done"
    assert len(slept) == 1
    if expected is None:  # Retry-After: 0 leaves the jittered backoff as it was
        assert 0.0 <= slept[0] <= 0.5
    else:
        assert slept[0] == expected
