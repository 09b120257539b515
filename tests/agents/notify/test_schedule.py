"""Retry delays: the schedule, its jitter, and Retry-After."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from agents.notify.schedule import SVIX_DELAYS, RetrySchedule, parse_retry_after


def test_default_is_svix_like() -> None:
    schedule = RetrySchedule()
    assert schedule.delays == (0, 5, 300, 1800, 7200, 18000, 36000) == SVIX_DELAYS
    assert schedule.jitter == 0.2
    assert schedule.max_attempts == 7


def test_delays_follow_the_schedule_then_give_up() -> None:
    schedule = RetrySchedule(delays=(0, 0.05, 0.1), jitter=0)
    assert schedule.next_delay(1) == 0.05
    assert schedule.next_delay(2) == 0.1
    assert schedule.next_delay(3) is None
    with pytest.raises(ValueError, match="from 1"):
        schedule.next_delay(0)


@pytest.mark.parametrize(("draw", "expected"), [(-0.2, 240.0), (0.2, 360.0), (0.0, 300.0)])
def test_jitter_spreads_both_ways(draw: float, expected: float) -> None:
    asked: list[tuple[float, float]] = []

    def uniform(low: float, high: float) -> float:
        asked.append((low, high))
        return draw

    schedule = RetrySchedule(uniform=uniform)
    assert schedule.next_delay(2) == pytest.approx(expected)
    assert asked == [(-0.2, 0.2)]


def test_real_jitter_stays_in_range() -> None:
    schedule = RetrySchedule()
    delays = {schedule.next_delay(1) for _ in range(200)}
    assert all(4.0 <= delay <= 6.0 for delay in delays if delay is not None)
    assert len(delays) > 1


def test_retry_after_wins_only_when_longer_and_is_capped() -> None:
    schedule = RetrySchedule(delays=(0, 5, 100), jitter=0, max_delay_s=60)
    assert schedule.next_delay(1, retry_after_s=30) == 30
    assert schedule.next_delay(1, retry_after_s=1) == 5
    assert schedule.next_delay(1, retry_after_s=10_000) == 60
    assert schedule.next_delay(3, retry_after_s=30) is None


def test_retry_after_cannot_push_a_job_beyond_the_schedule() -> None:
    """Issue 12: ``429`` with ``Retry-After: 330`` parked a job far beyond a 0/5/10 s schedule."""
    schedule = RetrySchedule(delays=(0, 5, 10), jitter=0)
    assert schedule.longest_delay_s == 10
    assert schedule.next_delay(1, retry_after_s=330) == 10
    assert schedule.next_delay(1, retry_after_s=86_400 * 365) == 10
    assert schedule.next_delay(1, retry_after_s=7) == 7  # within the schedule: honoured
    default = RetrySchedule(jitter=0)
    assert default.next_delay(1, retry_after_s=330) == 330  # the default goes up to 10 h
    assert default.next_delay(1, retry_after_s=10**9) == 36_000


def test_a_job_goes_to_the_retry_tier_that_fits_its_delay() -> None:
    schedule = RetrySchedule()  # 0, 5, 300, 1800, ... with ±20 %
    assert schedule.tier_for(0) == 1
    assert schedule.tier_for(4.0) == 1
    assert schedule.tier_for(6.0) == 1
    assert schedule.tier_for(240.0) == 2  # 300 s jittered down stays in the 300 s topic
    assert schedule.tier_for(330.0) == 2  # a Retry-After of 330 s on attempt 1
    assert schedule.tier_for(1500.0) == 3
    assert schedule.tier_for(36_000.0) == 6


def test_invalid_schedules_are_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        RetrySchedule(delays=())
    with pytest.raises(ValueError, match="negative"):
        RetrySchedule(delays=(0, -1))
    with pytest.raises(ValueError, match="jitter"):
        RetrySchedule(jitter=1.5)


def test_parse_retry_after() -> None:
    now = datetime(2025, 5, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 7 ", now) == 7.0
    assert parse_retry_after(format_datetime(now + timedelta(seconds=90), usegmt=True), now) == 90
    assert parse_retry_after("Thu, 01 May 2025 11:00:00 GMT", now) == 0.0  # in the past
    assert parse_retry_after(None, now) is None
    assert parse_retry_after("", now) is None
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after("-5", now) is None
    assert parse_retry_after("²", now) is None
