"""Tracking a campaign: counts by status and cost so far, what is missing, and the deadline."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from schemas.records import AssetCompleted, CompletionStatus

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)([hms])")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0}


def parse_duration(text: str) -> float:
    """Seconds in ``90``, ``45s``, ``30m``, ``1h30m`` or ``0.5s``; raises ValueError."""
    cleaned = text.strip().lower()
    try:
        seconds = float(cleaned)
    except ValueError:
        parts = _DURATION_PART.findall(cleaned)
        if not parts or "".join(n + u for n, u in parts) != cleaned:
            raise ValueError(f"not a duration: {text!r} (e.g. 90s, 30m, 1h30m)") from None
        seconds = sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(f"a duration must be positive, got {text!r}")
    return seconds


@dataclass
class CampaignSummary:
    """What has completed of a known set of request ids.

    Completions for ids outside the campaign are ignored; when one request completes more than
    once (a replay's later attempt), the latest attempt counts, so counts never exceed the
    campaign's size and cost is not counted twice (a completion's cost is its request's total).
    """

    request_ids: list[str]
    latest: dict[str, AssetCompleted] = field(default_factory=dict)
    #: Ids without a completion that wait for a person in the review stage (not lost).
    in_review: set[str] = field(default_factory=set)
    _wanted: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._wanted = frozenset(self.request_ids)

    def wants(self, request_id: str) -> bool:
        """Whether ``request_id`` belongs to this campaign (cheap: checked before decoding)."""
        return request_id in self._wanted

    def add(self, completion: AssetCompleted) -> bool:
        """Record a completion; True when it was one of ours and changed the summary."""
        rid = completion.request_id
        if rid not in self._wanted:
            return False
        previous = self.latest.get(rid)
        if previous is not None and previous.attempt >= completion.attempt:
            return False
        self.latest[rid] = completion
        self.in_review.discard(rid)
        return True

    def mark_in_review(self, request_ids: Iterable[str]) -> None:
        """Record which ids wait in review (read from the review table), so they are not
        reported as missing: they are held on purpose, until someone approves or rejects."""
        self.in_review = {rid for rid in request_ids if rid in self._wanted} - set(self.latest)

    def add_all(self, completions: Iterable[AssetCompleted]) -> None:
        for completion in completions:
            self.add(completion)

    @property
    def total(self) -> int:
        return len(self._wanted)

    @property
    def done(self) -> int:
        return len(self.latest)

    @property
    def complete(self) -> bool:
        return self.done == self.total

    @property
    def cost(self) -> float:
        return sum(c.cost for c in self.latest.values())

    def by_status(self) -> dict[str, int]:
        """Counts in the enum's order, every status present (zeros included)."""
        counts = Counter(c.status.value for c in self.latest.values())
        return {s.value: counts.get(s.value, 0) for s in CompletionStatus}

    def missing(self) -> list[str]:
        """Ids without a completion that are not waiting in review, in the campaign's order."""
        return [
            rid for rid in self.request_ids if rid not in self.latest and rid not in self.in_review
        ]

    def undelivered(self) -> list[str]:
        """Completed ids whose latest completion is not DELIVERED, in the campaign's order."""
        return [
            rid
            for rid in self.request_ids
            if rid in self.latest and self.latest[rid].status is not CompletionStatus.DELIVERED
        ]

    def line(self, elapsed: float | None = None) -> str:
        """One live status line: ``12/30 done  DELIVERED 10  REJECTED 2 ...  cost $0.0120``;
        ids waiting for a person show as ``IN_REVIEW n`` (held, not missing)."""
        statuses = "  ".join(f"{k} {v}" for k, v in self.by_status().items() if v)
        if self.in_review:
            statuses = f"{statuses}  IN_REVIEW {len(self.in_review)}".strip()
        when = f"  {elapsed:.0f}s" if elapsed is not None else ""
        return f"{self.done}/{self.total} done  {statuses or '-'}  cost ${self.cost:.4f}{when}"

    def table(self) -> str:
        """Counts by status, the cost, and how many wait in review or are missing, aligned."""
        rows = [(status, str(count)) for status, count in self.by_status().items()]
        rows.append(("IN_REVIEW", str(len(self.in_review))))
        rows.append(("MISSING", str(len(self.missing()))))
        rows.append(("cost (USD)", f"{self.cost:.6f}"))
        width = max(len(name) for name, _ in rows)
        return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)

    def report(self, *, show_missing: int = 20) -> dict[str, Any]:
        """A JSON-ready summary (``--json``); lists at most ``show_missing`` missing ids."""
        missing = self.missing()
        return {
            "requests": self.total,
            "completed": self.done,
            "by_status": self.by_status(),
            "cost": round(self.cost, 9),
            "in_review_count": len(self.in_review),
            "in_review": [rid for rid in self.request_ids if rid in self.in_review][:show_missing],
            "missing_count": len(missing),
            "missing": missing[:show_missing],
        }
