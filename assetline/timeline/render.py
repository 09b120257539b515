"""A request's timeline for a terminal (one line per event) or as JSON."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from assetline.timeline.entry import TimelineEntry
from assetline.timeline.index import RequestState
from assetline.timeline.progress import CampaignProgress


def iso_ms(at_ms: int) -> str:
    """``2026-12-03T21:40:00.123Z``: the record's timestamp, as people compare them."""
    return datetime.fromtimestamp(at_ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


def timeline_text(request_id: str, entries: Sequence[TimelineEntry]) -> str:
    """A heading, then ``time  +seconds  topic  kind  attempt  summary`` per entry."""
    if not entries:
        return f"no events for request {request_id!r}"
    first = entries[0]
    campaign = next((e.campaign_id for e in entries if e.campaign_id), None)
    tenant = next((e.tenant for e in entries if e.tenant), None)
    trace = next((e.trace_id for e in entries if e.trace_id), None)
    head = [f"request {request_id}"]
    if tenant or campaign:
        head.append(f"tenant {tenant or '-'}  campaign {campaign or '-'}")
    if trace:
        head.append(f"trace {trace}")
    rows = [
        (
            iso_ms(e.at_ms),
            f"+{(e.at_ms - first.at_ms) / 1000:.3f}s",
            e.topic.value,
            e.kind.value,
            f"#{e.attempt}" if e.attempt is not None else "",
            e.summary,
        )
        for e in entries
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(head)]
    for row in rows:
        cells = [c.ljust(w) for c, w in zip(row[:5], widths, strict=True)]
        lines.append("  ".join([*cells, row[5]]).rstrip())
    assets = [e.asset for e in entries if e.asset]
    if assets:
        lines.append(f"asset: {assets[-1]}")
    return "\n".join(lines)


def timeline_json(
    request_id: str, entries: Sequence[TimelineEntry], state: RequestState | None
) -> dict[str, Any]:
    """The timeline and the request's summary, JSON-ready (``assetline status --json``)."""
    return {
        "request_id": request_id,
        "campaign_id": state.campaign_id if state else None,
        "tenant": state.tenant if state else None,
        "status": state.status if state else None,
        "in_review": state.in_review if state else False,
        "cost": state.cost if state else 0.0,
        "trace_id": state.trace_id if state else None,
        "events": [e.as_json() | {"at": iso_ms(e.at_ms)} for e in entries],
    }


def progress_text(progress: CampaignProgress) -> str:
    """A campaign's progress as aligned rows: counts by status (waiting in review apart),
    failures by reason code, cost, rate and the time left."""
    p = progress
    rows = [("campaign", p.campaign_id), ("requests", f"{p.completed}/{p.requests} completed")]
    rows += [(status, str(count)) for status, count in p.by_status.items()]
    rows += [(f"  {code}", str(n)) for code, n in p.failed_by_reason.items()]
    rows.append(("cost (USD)", f"{p.cost:.6f}"))
    rows.append(("rate", f"{p.rate_per_s:.2f}/s over the last {p.window_s:g}s"))
    if p.eta_s is None:
        left = f"{p.remaining} in flight, none completed in the window"
    else:
        left = f"{p.remaining} in flight, ~{p.eta_s:.0f}s"
    if p.waiting_in_review:
        left += f" (+{p.waiting_in_review} waiting in review)"
    rows.append(("left", left))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)
