"""When to retry a webhook: a Svix-like schedule with jitter, and honouring ``Retry-After``."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

#: Seconds before attempt 1, 2, ...: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h.
SVIX_DELAYS: tuple[float, ...] = (0, 5, 300, 1800, 7200, 18000, 36000)


@dataclass(frozen=True)
class RetrySchedule:
    """``delays[i]`` is the wait before attempt ``i + 1``; the schedule allows len(delays) tries.

    Each retry delay is spread by ``±jitter`` (a fraction) so that receivers coming back up
    are not hit by every sender at once. ``Retry-After`` wins when it asks for longer, but
    never beyond the schedule's longest delay (nor ``max_delay_s``): a receiver may slow its
    retries down to the schedule's own pace, not park a delivery beyond it.
    """

    delays: tuple[float, ...] = SVIX_DELAYS
    jitter: float = 0.2
    max_delay_s: float = 86_400.0
    uniform: Callable[[float, float], float] = field(default=random.uniform, compare=False)

    def __post_init__(self) -> None:
        if not self.delays:
            raise ValueError("a retry schedule needs at least one delay")
        if any(delay < 0 for delay in self.delays):
            raise ValueError("retry delays must not be negative")
        if not 0 <= self.jitter < 1:
            raise ValueError("jitter is a fraction in [0, 1)")

    @property
    def max_attempts(self) -> int:
        return len(self.delays)

    def next_delay(self, attempt: int, retry_after_s: float | None = None) -> float | None:
        """Seconds to wait after failed ``attempt`` (1-based); None means give up."""
        if attempt < 1:
            raise ValueError("attempts are numbered from 1")
        if attempt >= len(self.delays):
            return None
        base = self.delays[attempt]
        delay = base * (1 + self.uniform(-self.jitter, self.jitter)) if base else 0.0
        if retry_after_s is not None and retry_after_s > delay:
            delay = min(retry_after_s, self.longest_delay_s)
        return min(max(delay, 0.0), self.max_delay_s)

    @property
    def longest_delay_s(self) -> float:
        """The most a ``Retry-After`` can ask for: the schedule's longest delay."""
        return max(self.delays)

    def tier_for(self, delay_s: float) -> int:
        """The retry topic (1-based tier) for a job due ``delay_s`` from now.

        The last tier whose delay, shortened by the jitter, is not above ``delay_s``: each
        retry topic holds jobs due about its own delay after they were written, so its
        records come due roughly in the order they were read, whatever ``Retry-After`` said.
        """
        tier = 1
        for index in range(1, len(self.delays)):
            if self.delays[index] * (1 - self.jitter) <= delay_s:
                tier = index
        return tier


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta-seconds or HTTP date), or None."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - (now or datetime.now(UTC))).total_seconds(), 0.0)
