"""A campaign's progress, read off the request index: where each of its requests stands.

A request waiting for a person is *waiting in review*, never missing: it is held on purpose.
The rate is completions per second over a recent window, and the time left is the requests
still in the machine's hands (not those in review) at that rate.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from assetline.timeline.index import RequestIndex, RequestState
from schemas.records import CompletionStatus

#: Default window for the completion rate, in seconds.
RATE_WINDOW_S = 60.0
IN_REVIEW = "IN_REVIEW"
IN_FLIGHT = "IN_FLIGHT"
DEAD_LETTER = "DEAD_LETTER"
#: Statuses whose reason codes are counted: the request did not get its asset.
_FAILING = (CompletionStatus.FAILED.value, CompletionStatus.REJECTED.value)


@dataclass(frozen=True)
class CampaignProgress:
    """One campaign at one moment. ``by_status`` has every completion status plus
    ``IN_REVIEW``, ``DEAD_LETTER`` (dead-lettered, no completion) and ``IN_FLIGHT``."""

    campaign_id: str
    requests: int
    completed: int
    by_status: dict[str, int]
    waiting_in_review: int
    failed_by_reason: dict[str, int]
    cost: float
    rate_per_s: float
    window_s: float
    #: Requests still with the line (in flight, plus expected ones not seen yet).
    remaining: int
    #: ``remaining`` at ``rate_per_s``; ``None`` when nothing completed in the window.
    eta_s: float | None

    def as_json(self) -> dict[str, Any]:
        return {
            "campaign_id": self.campaign_id,
            "requests": self.requests,
            "completed": self.completed,
            "by_status": self.by_status,
            "waiting_in_review": self.waiting_in_review,
            "failed_by_reason": self.failed_by_reason,
            "cost": round(self.cost, 9),
            "rate_per_s": round(self.rate_per_s, 3),
            "window_s": self.window_s,
            "remaining": self.remaining,
            "eta_s": None if self.eta_s is None else round(self.eta_s, 1),
        }


def bucket_of(state: RequestState) -> str:
    """Where one request stands: its completion status, or IN_REVIEW / DEAD_LETTER / IN_FLIGHT."""
    if state.status is not None:
        return state.status
    if state.in_review:
        return IN_REVIEW
    if state.dead_lettered:
        return DEAD_LETTER
    return IN_FLIGHT


def progress_of(
    campaign_id: str,
    states: Iterable[RequestState],
    *,
    now_ms: int | None = None,
    window_s: float = RATE_WINDOW_S,
    expected: int | None = None,
) -> CampaignProgress:
    """Progress of ``campaign_id`` from its requests' states (pure; ``now_ms`` for tests).

    ``expected``: the campaign's planned size when known (requests not seen yet count as
    remaining), else the requests seen.
    """
    now = int(time.time() * 1000) if now_ms is None else now_ms
    since = now - int(window_s * 1000)
    buckets: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    recent = 0
    cost = 0.0
    seen = 0
    for state in states:
        seen += 1
        bucket = bucket_of(state)
        buckets[bucket] += 1
        cost += state.cost
        if bucket in _FAILING:
            reasons[state.reason_code or "unknown"] += 1
        if state.completed_ms is not None and since < state.completed_ms <= now:
            recent += 1
    statuses = [s.value for s in CompletionStatus]
    by_status = {s: buckets.get(s, 0) for s in [*statuses, IN_REVIEW, DEAD_LETTER, IN_FLIGHT]}
    completed = sum(by_status[s] for s in statuses)
    total = max(seen, expected or 0)
    remaining = total - completed - by_status[IN_REVIEW] - by_status[DEAD_LETTER]
    rate = recent / window_s if window_s > 0 else 0.0
    return CampaignProgress(
        campaign_id=campaign_id,
        requests=total,
        completed=completed,
        by_status=by_status,
        waiting_in_review=by_status[IN_REVIEW],
        failed_by_reason=dict(reasons.most_common()),
        cost=cost,
        rate_per_s=rate,
        window_s=window_s,
        remaining=remaining,
        eta_s=(remaining / rate if rate > 0 else None) if remaining else 0.0,
    )


def campaign_progress(
    index: RequestIndex,
    campaign_id: str,
    *,
    now_ms: int | None = None,
    window_s: float = RATE_WINDOW_S,
    expected: int | None = None,
) -> CampaignProgress:
    """:func:`progress_of` the campaign's requests in ``index``."""
    return progress_of(
        campaign_id,
        index.campaign_states(campaign_id),
        now_ms=now_ms,
        window_s=window_s,
        expected=expected,
    )


def all_progress(
    index: RequestIndex, *, now_ms: int | None = None, window_s: float = RATE_WINDOW_S
) -> list[CampaignProgress]:
    """Every indexed campaign's progress, by campaign id."""
    return [
        campaign_progress(index, c, now_ms=now_ms, window_s=window_s) for c in index.campaigns()
    ]
