"""Retry delays: full jitter within the exponential ceiling, Retry-After as a capped floor."""

from __future__ import annotations

import math
import random
import statistics

import pytest

from agents.inference.routing.backoff import RetryPolicy

SAMPLES = 2000


def test_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.max_retries, policy.base_s, policy.cap_s, policy.max_retry_after_s) == (
        2,
        0.5,
        20.0,
        60.0,
    )


@pytest.mark.parametrize("field", ["max_retries", "base_s", "cap_s", "max_retry_after_s"])
def test_negative_fields_are_rejected(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        RetryPolicy(**{field: -1})


def test_nan_is_rejected() -> None:
    with pytest.raises(ValueError, match="base_s"):
        RetryPolicy(base_s=math.nan)


def test_negative_retry_is_rejected() -> None:
    with pytest.raises(ValueError, match="retry"):
        RetryPolicy().delay(-1, None, random.Random(0))


def test_ceiling_doubles_then_caps() -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=20.0)
    assert [policy.ceiling(r) for r in range(8)] == [0.5, 1, 2, 4, 8, 16, 20, 20]
    assert policy.ceiling(10_000) == 20.0  # no float overflow for absurd retry counts


@pytest.mark.parametrize("retry", range(8))
def test_full_jitter_spans_zero_to_ceiling(retry: int) -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=20.0)
    rng = random.Random(1234 + retry)
    ceiling = policy.ceiling(retry)
    samples = [policy.delay(retry, None, rng) for _ in range(SAMPLES)]
    assert all(0.0 <= s <= ceiling for s in samples)
    # Full jitter, not "equal jitter" or a fixed delay: the whole range is used, uniformly.
    assert min(samples) < 0.05 * ceiling
    assert max(samples) > 0.95 * ceiling
    assert statistics.fmean(samples) == pytest.approx(ceiling / 2, rel=0.05)


def test_same_seed_same_delays() -> None:
    policy = RetryPolicy()
    a, b = random.Random(7), random.Random(7)
    assert [policy.delay(r, None, a) for r in range(5)] == [
        policy.delay(r, None, b) for r in range(5)
    ]


def test_retry_after_is_a_floor() -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=20.0)
    rng = random.Random(42)
    assert all(policy.delay(0, 5.0, rng) == 5.0 for _ in range(200))  # jitter <= 0.5 < 5
    # When the jittered delay is already longer, it wins: max(retry_after, jittered).
    samples = [policy.delay(6, 1.0, rng) for _ in range(SAMPLES)]
    assert all(1.0 <= s <= 20.0 for s in samples)
    assert max(samples) > 19.0


def test_retry_after_is_capped() -> None:
    policy = RetryPolicy(max_retry_after_s=60.0)
    rng = random.Random(3)
    assert policy.delay(0, 3600.0, rng) == 60.0
    assert policy.delay(1, math.inf, rng) == 60.0


@pytest.mark.parametrize("garbage", [-5.0, 0.0, math.nan])
def test_unusable_retry_after_falls_back_to_jitter(garbage: float) -> None:
    policy = RetryPolicy()
    a, b = random.Random(9), random.Random(9)
    assert policy.delay(2, garbage, a) == policy.delay(2, None, b)
