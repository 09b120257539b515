"""Retrying a sink write: exponential backoff with full jitter, on retryable errors only.

Full jitter (a delay drawn from ``[0, cap]``) spreads the retries of many workers that failed
together, so a recovering destination is not hit by them all at once.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from pathlib import PurePosixPath

from agents.deliver.sinks._base import Sink, SinkError

__all__ = ["RetryingSink", "backoff_cap", "write_with_retry"]

Sleep = Callable[[float], Awaitable[None]]


def backoff_cap(retry: int, base_delay_s: float, max_delay_s: float) -> float:
    """The upper bound of the delay before retry number ``retry`` (0 for the first retry)."""
    return min(max_delay_s, base_delay_s * 2.0**retry)


async def write_with_retry(
    sink_call: Callable[[], Awaitable[str]],
    attempts: int,
    base_delay_s: float,
    sleep: Sleep = asyncio.sleep,
    *,
    max_delay_s: float = 30.0,
    rng: random.Random | None = None,
) -> str:
    """Call ``sink_call`` up to ``attempts`` times; re-raise the last error when all fail.

    A non-retryable :class:`SinkError` (and any other exception) is raised at once.
    """
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    if base_delay_s < 0 or max_delay_s < 0:
        raise ValueError("delays must not be negative")
    draw = rng.uniform if rng is not None else random.uniform
    for attempt in range(attempts):
        try:
            return await sink_call()
        except SinkError as exc:
            if not exc.retryable or attempt == attempts - 1:
                raise
            delay = draw(0.0, backoff_cap(attempt, base_delay_s, max_delay_s))
            if exc.retry_after_s is not None:  # the receiver said when; never past our cap
                delay = min(max(delay, exc.retry_after_s), max_delay_s)
        await sleep(delay)
    raise AssertionError("unreachable: the last attempt returns or raises")


class RetryingSink:
    """A sink whose retryable failures are retried with backoff before they count.

    Wrapping keeps the retry policy out of every sink and out of the delivery logic: the
    deliver stage sees one ``write`` that either lands or fails for good.
    """

    def __init__(
        self,
        sink: Sink,
        attempts: int,
        base_delay_s: float,
        *,
        max_delay_s: float = 30.0,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.sink = sink
        self.attempts = attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s
        self.sleep = sleep

    async def write(self, path: PurePosixPath, data: bytes, media_type: str) -> str:
        return await write_with_retry(
            lambda: self.sink.write(path, data, media_type),
            self.attempts,
            self.base_delay_s,
            self.sleep,
            max_delay_s=self.max_delay_s,
        )

    async def create(self, path: PurePosixPath, data: bytes, media_type: str) -> str:
        """:meth:`Sink.create`, retried the same way; a taken path is final, not retried."""
        return await write_with_retry(
            lambda: self.sink.create(path, data, media_type),
            self.attempts,
            self.base_delay_s,
            self.sleep,
            max_delay_s=self.max_delay_s,
        )
