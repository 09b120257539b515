"""How long to wait before retrying a provider call.

Full jitter (AWS architecture blog, "Exponential Backoff And Jitter") spreads the retries of
many workers that failed together, so they do not hit a recovering provider in lockstep. A
provider's ``Retry-After`` is a floor: retrying sooner only earns another 429.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, fields

#: Beyond this many doublings every sane ``base_s`` is past ``cap_s``; stops float overflow.
_MAX_DOUBLINGS = 64


@dataclass(frozen=True)
class RetryPolicy:
    """Retry count and backoff shape for one rung of a fallback chain."""

    max_retries: int = 2
    base_s: float = 0.5
    cap_s: float = 20.0
    max_retry_after_s: float = 60.0

    def __post_init__(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if not value >= 0:  # also rejects NaN
                raise ValueError(f"RetryPolicy.{field.name} must be >= 0, got {value!r}")

    def ceiling(self, retry: int) -> float:
        """Upper bound of the jittered sleep before retry number ``retry`` (0 = first)."""
        if retry < 0:
            raise ValueError(f"retry counts from 0, got {retry}")
        if retry >= _MAX_DOUBLINGS:
            return self.cap_s
        return min(self.cap_s, math.ldexp(self.base_s, retry))  # base * 2**retry

    def delay(self, retry: int, retry_after_s: float | None, rng: random.Random) -> float:
        """Seconds to sleep before retry number ``retry`` (0 = the first retry).

        ``uniform(0, min(cap, base * 2**retry))``; when the provider sent ``Retry-After`` the
        result is at least that, capped at ``max_retry_after_s`` so a hostile or buggy header
        cannot park a worker for an hour.
        """
        jittered = rng.uniform(0.0, self.ceiling(retry))
        if retry_after_s is None:
            return jittered
        # ``not > 0`` also turns a NaN from a garbled header into "no floor".
        floor = min(retry_after_s, self.max_retry_after_s) if retry_after_s > 0 else 0.0
        return max(floor, jittered)
