"""One record of a line topic -> the timeline entries it means for its request (pure).

Kept free of Kafka so the same function serves the follower, the CLI, the tests and the
benchmark: give it what a consumer record holds (topic kind, key, value, headers, timestamp)
and the codecs, get back what happened to which request.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from agents.deliver.deferral import deferral_of
from schemas.records import (
    AssetCompleted,
    GenerationRequest,
    RawAsset,
    ValidatedAsset,
)
from streams.codecs import CodecError, Codecs
from streams.dead_letters import HEADER_PREFIX
from streams.topics import TopicNames

#: W3C trace context header (https://www.w3.org/TR/trace-context/).
TRACEPARENT = "traceparent"


class TopicKind(StrEnum):
    """Which line topic a record came from; the values are :class:`TopicNames` field names
    (every ``.webhooks.retry.<n>`` tier is ``webhook_retry``)."""

    REQUESTS = "requests"
    RAW = "raw"
    APPROVED = "approved"
    REJECTED = "rejected"
    REVIEW = "review"
    REVIEW_DECISIONS = "review_decisions"
    REVIEW_ITEMS = "review_items"
    COMPLETED = "completed"
    DELIVER_DEFERRED = "deliver_deferred"
    DEADLETTER = "deadletter"
    ALERTS = "alerts"
    WEBHOOKS = "webhooks"
    WEBHOOK_RETRY = "webhook_retry"
    GENERATIONS = "generations"
    SHADOWS = "shadows"


class EventKind(StrEnum):
    """What happened to a request, in the order the line normally does it."""

    REQUESTED = "requested"
    RECORDED = "generation_recorded"
    GENERATED = "generated"
    VALIDATED = "validated"
    SHADOW = "shadow_validated"
    SENT_TO_REVIEW = "sent_to_review"
    REVIEW_ITEM = "review_item"
    DECIDED = "decided"
    REVIEWED = "review_applied"
    ALERT = "alert"
    DEAD_LETTER = "dead_letter"
    DEFERRED = "delivery_deferred"
    DELIVERED = "delivered"
    COMPLETED = "completed"
    WEBHOOK = "webhook"
    UNDECODABLE = "undecodable"


#: Tie-break for entries written in the same millisecond (after the attempt number).
KIND_RANK: dict[EventKind, int] = {kind: rank for rank, kind in enumerate(EventKind)}


@dataclass(frozen=True, slots=True)
class TimelineEntry:
    """One event of a request; ``details`` is JSON-ready, ``summary`` is one line for people.

    ``at_ms`` is the Kafka record's timestamp (ms since the epoch), the one clock every topic
    shares; ``asset`` is the blob URI of the asset the event is about, ``trace_id`` the
    W3C trace id of the record's ``traceparent`` header.
    """

    request_id: str
    at_ms: int
    topic: TopicKind
    kind: EventKind
    summary: str
    attempt: int | None = None
    asset: str | None = None
    trace_id: str | None = None
    campaign_id: str | None = None
    tenant: str | None = None
    #: The request's spend so far as this record tells it (USD), when it tells it.
    cost: float | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("request_id", "campaign_id", "tenant", "asset", "trace_id"):
            object.__setattr__(self, name, _i(getattr(self, name)))

    def sort_key(self) -> tuple[int, int, int]:
        return (self.at_ms, self.attempt or 0, KIND_RANK[self.kind])

    def as_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "at_ms": self.at_ms,
            "topic": self.topic.value,
            "kind": self.kind.value,
            "summary": self.summary,
            "attempt": self.attempt,
            "asset": self.asset,
            "trace_id": self.trace_id,
            "campaign_id": self.campaign_id,
            "tenant": self.tenant,
            "cost": self.cost,
            "details": self.details,
        }


Headers = Iterable[tuple[str, bytes | None]] | None


def _i(text: str | None) -> str | None:
    """One shared copy of a string that repeats across entries (ids, names): with 100,000
    requests indexed, the copies each record decodes would be most of the index's memory."""
    return sys.intern(text) if text else text


def topic_kinds(names: TopicNames, retry_tiers: int = 0) -> dict[str, TopicKind]:
    """Full topic name -> kind, for every topic the timeline reads (``retry_tiers``: how many
    ``.webhooks.retry.<n>`` topics, ``len(settings.webhook_schedule_s) - 1``)."""
    kinds = {getattr(names, kind.value): kind for kind in TopicKind if kind.value in vars(names)}
    kinds[names.requests_urgent] = TopicKind.REQUESTS  # HIGH requests' own intake
    for tier in range(1, retry_tiers + 1):
        kinds[names.webhook_retry(tier)] = TopicKind.WEBHOOK_RETRY
    return kinds


def trace_id_of(headers: Headers) -> str | None:
    """The trace id of a ``traceparent`` header (``00-<32 hex>-<16 hex>-<2 hex>``), if valid."""
    for name, value in headers or ():
        if name.lower() != TRACEPARENT or not value:
            continue
        parts = value.decode("ascii", "replace").strip().split("-")
        if len(parts) >= 4 and len(parts[1]) == 32 and parts[1] != "0" * 32:
            try:
                int(parts[1], 16)
            except ValueError:
                return None
            return parts[1].lower()
    return None


def request_id_of_key(topic: TopicKind, key: bytes | None) -> str | None:
    """The request a record's key names (``.generations`` keys are ``<request_id>|<attempt>``);
    ``None`` for ``.alerts`` (keyed by alert id: the request is in the value)."""
    if key is None or topic is TopicKind.ALERTS:
        return None
    text = key.decode("utf-8", "replace")
    if topic is TopicKind.GENERATIONS:
        text = text.rpartition("|")[0] or text
    return text


def entry_from(
    topic: TopicKind,
    key: bytes | None,
    value: bytes | None,
    headers: Headers,
    timestamp: int,
    *,
    codecs: Codecs,
) -> tuple[TimelineEntry, ...]:
    """The entries a record means: none (a tombstone, an alert about no request), one, or two
    (a delivered completion is the delivery, with its location, and then the completion).

    ``timestamp`` is the record's timestamp in ms. A value that does not decode still gives an
    ``undecodable`` entry when its key names a request: the request's story shows the gap.
    """
    header_list: Sequence[tuple[str, bytes | None]] = list(headers or ())
    trace = trace_id_of(header_list)
    rid = request_id_of_key(topic, key)
    if value is None:
        return ()
    if topic is TopicKind.DEADLETTER:
        return _dead_letter(rid, timestamp, header_list, trace)
    if topic is TopicKind.GENERATIONS:
        return _recorded(rid, key, value, timestamp, trace)
    try:
        if topic is TopicKind.DELIVER_DEFERRED:
            return (_deferred(value, timestamp, header_list, trace, codecs),)
        return _decoded(topic, rid, value, timestamp, trace, codecs)
    except CodecError as exc:
        if rid is None:
            return ()
        return (
            TimelineEntry(
                rid,
                timestamp,
                topic,
                EventKind.UNDECODABLE,
                f"undecodable value on {topic.value}: {exc}",
                trace_id=trace,
                details={"error": str(exc), "code": getattr(exc, "code", None)},
            ),
        )


def _decoded(
    topic: TopicKind,
    rid: str | None,
    value: bytes,
    at: int,
    trace: str | None,
    codecs: Codecs,
) -> tuple[TimelineEntry, ...]:
    if topic is TopicKind.REQUESTS:
        return (_requested(codecs.request.decode(value), at, trace),)
    if topic is TopicKind.RAW:
        return (_generated(codecs.raw.decode(value), at, trace),)
    if topic in (TopicKind.APPROVED, TopicKind.REJECTED, TopicKind.REVIEW, TopicKind.SHADOWS):
        return (_validated(topic, codecs.validated.decode(value), at, trace),)
    if topic is TopicKind.COMPLETED:
        return _completed(codecs.completed.decode(value), at, trace)
    if topic is TopicKind.REVIEW_DECISIONS:
        d = codecs.review_decision.decode(value)
        note = f": {d.note}" if d.note else ""
        return (
            TimelineEntry(
                d.request_id,
                at,
                topic,
                EventKind.DECIDED,
                f"{d.action.value} by {d.reviewer}{note}",
                trace_id=trace,
                details={
                    "action": d.action.value,
                    "reviewer": d.reviewer,
                    "note": d.note,
                    "decision_id": d.decision_id,
                    "decided_at": d.decided_at.isoformat(),
                },
            ),
        )
    if topic is TopicKind.REVIEW_ITEMS:
        item = codecs.review_item.decode(value)
        raw = item.asset.raw
        by = f" by {item.decision.reviewer}" if item.decision else ""
        return (
            TimelineEntry(
                item.request_id,
                at,
                topic,
                EventKind.REVIEW_ITEM,
                f"review item {item.status.value}{by}",
                attempt=raw.request.attempt,
                asset=raw.blob.uri if raw.blob else None,
                trace_id=trace,
                campaign_id=raw.request.campaign_id,
                tenant=raw.request.tenant,
                details={
                    "status": item.status.value,
                    "queued_at": item.queued_at.isoformat(),
                    "reviewer": item.decision.reviewer if item.decision else None,
                },
            ),
        )
    if topic is TopicKind.ALERTS:
        alert = codecs.alert.decode(value)
        if alert.request_id is None:
            return ()
        return (
            TimelineEntry(
                alert.request_id,
                at,
                topic,
                EventKind.ALERT,
                f"alert {alert.kind.value}: {alert.message}",
                trace_id=trace,
                campaign_id=alert.campaign_id,
                tenant=alert.tenant,
                details={
                    "alert_id": alert.alert_id,
                    "alert": alert.kind.value,
                    "message": alert.message,
                    "provider": _i(alert.provider),
                    "alias": _i(alert.alias),
                    "details": dict(alert.details),
                },
            ),
        )
    if topic in (TopicKind.WEBHOOKS, TopicKind.WEBHOOK_RETRY):
        job = codecs.webhook_job.decode(value)
        done = job.completion
        call = "first call" if topic is TopicKind.WEBHOOKS else f"retry {job.delivery_attempt}"
        return (
            TimelineEntry(
                done.request_id,
                at,
                topic,
                EventKind.WEBHOOK,
                f"webhook {call} to {job.url} due {job.due_at.isoformat()}",
                attempt=done.attempt,
                trace_id=trace,
                campaign_id=done.campaign_id,
                tenant=done.tenant,
                details={
                    "webhook_id": job.webhook_id,
                    "url": job.url,
                    "delivery_attempt": job.delivery_attempt,
                    "due_at": job.due_at.isoformat(),
                    "status": done.status.value,
                },
            ),
        )
    return ()


def _requested(r: GenerationRequest, at: int, trace: str | None) -> TimelineEntry:
    again = f" (attempt {r.attempt}, feedback: {'; '.join(r.feedback)})" if r.feedback else ""
    return TimelineEntry(
        r.request_id,
        at,
        TopicKind.REQUESTS,
        EventKind.REQUESTED,
        f"requested {r.kind.value} for {r.tenant}/{r.campaign_id}{again}",
        attempt=r.attempt,
        trace_id=trace,
        campaign_id=r.campaign_id,
        tenant=r.tenant,
        cost=r.prior_cost if r.prior_cost else None,
        details={
            "kind": r.kind.value,
            "alias": _i(r.model.alias),
            "profile": _i(r.brand_profile_id),
            "priority": r.priority.value,
            "feedback": list(r.feedback),
            "prior_cost": r.prior_cost,
            "created_at": r.created_at.isoformat(),
        },
    )


def _generated(raw: RawAsset, at: int, trace: str | None) -> TimelineEntry:
    r = raw.request
    calls = [
        {
            "provider": _i(a.provider),
            "model": _i(a.model),
            "code": a.code,
            "cost": a.cost,
            "latency_ms": a.latency_ms,
            "input_tokens": a.input_tokens,
            "output_tokens": a.output_tokens,
            "purpose": a.purpose,
        }
        for a in raw.attempts
    ]
    outcome = f"failed {raw.error.code}" if raw.error else "generated"
    rung = f" rung {raw.rung}" if raw.rung else ""
    return TimelineEntry(
        r.request_id,
        at,
        TopicKind.RAW,
        EventKind.GENERATED,
        f"{outcome} by {raw.provider}/{raw.model_version}{rung} ${raw.cost:.4f} "
        f"({len(raw.attempts)} call(s), {raw.latency_ms:.0f} ms)",
        attempt=r.attempt,
        asset=raw.blob.uri if raw.blob else None,
        trace_id=trace,
        campaign_id=r.campaign_id,
        tenant=r.tenant,
        cost=r.prior_cost + raw.cost,
        details={
            "provider": _i(raw.provider),
            "model": _i(raw.model_version),
            "alias": _i(raw.alias),
            "rung": _i(raw.rung),
            "fallback": raw.fallback,
            "cost": raw.cost,
            "latency_ms": raw.latency_ms,
            "error": raw.error.code if raw.error else None,
            "media_type": raw.blob.media_type if raw.blob else None,
            # with ``asset`` (the uri), the blob ref a page needs to serve the asset by hash
            "sha256": raw.blob.sha256 if raw.blob else None,
            "size": raw.blob.size if raw.blob else None,
            "calls": calls,
        },
    )


def _deferred(
    value: bytes,
    at: int,
    headers: Sequence[tuple[str, bytes | None]],
    trace: str | None,
    codecs: Codecs,
) -> TimelineEntry:
    """A delivery the deliver stage put off while its destination had its bound of deliveries
    waiting or its circuit breaker open (agents/deliver/deferral.py): who it waits for, how
    often, until when."""
    v = codecs.validated.decode(value)
    deferral = deferral_of(headers)
    raw, r = v.raw, v.raw.request
    times = "1 time" if deferral.count == 1 else f"{deferral.count} times"
    due = f", due {_iso_ms(deferral.due_ms)}" if deferral.due_ms is not None else ""
    return TimelineEntry(
        r.request_id,
        at,
        TopicKind.DELIVER_DEFERRED,
        EventKind.DEFERRED,
        f"deferred for destination {deferral.destination or '?'} ({times}{due})",
        attempt=r.attempt,
        asset=raw.blob.uri if raw.blob else None,
        trace_id=trace,
        campaign_id=r.campaign_id,
        tenant=r.tenant,
        details={
            "destination": _i(deferral.destination),
            "deferrals": deferral.count,
            "due_ms": deferral.due_ms,
            "source_topic": _i(deferral.source),
        },
    )


def _iso_ms(ms: int) -> str:
    """The time as ISO 8601; a header's number past the calendar (up to 18 digits are read)
    shows as it is, never as an error in the index."""
    try:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")
    except (OverflowError, ValueError, OSError):
        return f"{ms} ms"


def _validated(topic: TopicKind, v: ValidatedAsset, at: int, trace: str | None) -> TimelineEntry:
    raw, report = v.raw, v.report
    r = raw.request
    failed = [{"code": c.code, "message": c.message} for c in report.checks if not c.passed]
    disposition = v.disposition.value if v.disposition else None
    if topic is TopicKind.REVIEW:
        kind, summary = EventKind.SENT_TO_REVIEW, "sent to review"
    elif topic is TopicKind.SHADOWS:
        kind, summary = EventKind.SHADOW, f"shadow {report.verdict.value}"
    elif v.review is not None:
        kind = EventKind.REVIEWED
        summary = f"{v.review.action.value} by {v.review.reviewer} -> {topic.value}"
    else:
        kind = EventKind.VALIDATED
        summary = f"{report.verdict.value} -> {disposition or topic.value}"
    if failed and kind is not EventKind.REVIEWED:
        summary += ": " + ", ".join(f["code"] for f in failed)
    return TimelineEntry(
        r.request_id,
        at,
        topic,
        kind,
        summary,
        attempt=r.attempt,
        asset=raw.blob.uri if raw.blob else None,
        trace_id=trace,
        campaign_id=r.campaign_id,
        tenant=r.tenant,
        cost=r.prior_cost + raw.cost + report.cost,
        details={
            "verdict": report.verdict.value,
            "disposition": disposition,
            "profile": _i(report.profile),
            "checks": len(report.checks),
            "failed": failed,
            "duration_ms": report.duration_ms,
            "reviewer": v.review.reviewer if v.review else None,
        },
    )


def _completed(c: AssetCompleted, at: int, trace: str | None) -> tuple[TimelineEntry, ...]:
    code = reason_code(c.reasons)
    common: dict[str, Any] = {
        "attempt": c.attempt,
        "trace_id": trace,
        "campaign_id": c.campaign_id,
        "tenant": c.tenant,
        "cost": c.cost,
    }
    done = TimelineEntry(
        c.request_id,
        at,
        TopicKind.COMPLETED,
        EventKind.COMPLETED,
        f"{c.status.value}" + (f" ({code})" if code else "") + f" ${c.cost:.4f}",
        details={
            "status": c.status.value,
            "reason_code": code,
            "reasons": list(c.reasons),
            "location": c.location,
            "provider": _i(c.provider),
            "model": _i(c.model_version),
            "rung": _i(c.rung),
            "timings_ms": dict(c.timings_ms),
            "reviewer": c.review.reviewer if c.review else None,
            "completed_at": c.completed_at.isoformat(),
        },
        **common,
    )
    if c.location is None:
        return (done,)
    delivered = TimelineEntry(
        c.request_id,
        at,
        TopicKind.COMPLETED,
        EventKind.DELIVERED,
        f"delivered to {c.location}",
        asset=c.location,
        details={"location": c.location, "media_type": c.media_type, "sha256": c.sha256},
        **common,
    )
    return (delivered, done)


def reason_code(reasons: Sequence[str]) -> str | None:
    """The code of a completion's first reason: ``"json.schema: ..."`` -> ``json.schema``."""
    return reasons[0].partition(": ")[0].strip() or None if reasons else None


def _dead_letter(
    rid: str | None, at: int, headers: Sequence[tuple[str, bytes | None]], trace: str | None
) -> tuple[TimelineEntry, ...]:
    if rid is None:
        return ()
    h = {k[len(HEADER_PREFIX) :]: (v or b"").decode("utf-8", "replace") for k, v in headers
         if k.startswith(HEADER_PREFIX)}  # fmt: skip
    stage, code = h.get("stage", "?"), h.get("error.code", "?")
    return (
        TimelineEntry(
            rid,
            at,
            TopicKind.DEADLETTER,
            EventKind.DEAD_LETTER,
            f"dead-lettered by {stage}: {code}: {h.get('error.reason', '')}",
            trace_id=trace,
            details={
                "stage": stage,
                "code": code,
                "reason": h.get("error.reason"),
                "source_topic": h.get("source.topic"),
                "source_partition": h.get("source.partition"),
                "source_offset": h.get("source.offset"),
                "parked": h.get("value.parked"),
            },
        ),
    )


_TICKET_FIELDS = ("provider", "model", "batch_id")


def _text_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _recorded(
    rid: str | None, key: bytes | None, value: bytes, at: int, trace: str | None
) -> tuple[TimelineEntry, ...]:
    """A ``.generations`` record: ``<13-digit epoch ms> <json>`` (agents/generate/finished.py,
    not imported: a stage's module is no API); read leniently, it is only for the story."""
    if rid is None:
        return ()
    attempt_text = (key or b"").decode("utf-8", "replace").rpartition("|")[2]
    batched = attempt_text.startswith("batch-")  # agents/inference/batch/_tickets.py
    attempt_text = attempt_text.removeprefix("batch-")
    attempt = int(attempt_text) if attempt_text.isdigit() else None
    _, _, body = value.partition(b" ")
    try:
        document = json.loads(body)
        raw = document.get("raw", {})
    except (ValueError, AttributeError):
        document, raw = {}, {}
    if batched and isinstance(document, dict):
        provider, model, batch_id = (_text_or_none(document.get(name)) for name in _TICKET_FIELDS)
        details = {"provider": _i(provider), "model": _i(model), "batch_id": _i(batch_id)}
        summary = f"placed in provider batch {_i(batch_id)} ({_i(provider)}/{_i(model)})"
        input_file = _text_or_none(document.get("input_file_id"))
        if not batch_id and input_file:  # an intent: recorded before the batch is created
            details["input_file_id"] = _i(input_file)
            summary = (
                f"about to be batched from input file {_i(input_file)} ({_i(provider)}/{_i(model)})"
            )
        return (
            TimelineEntry(
                rid,
                at,
                TopicKind.GENERATIONS,
                EventKind.RECORDED,
                summary,
                attempt=attempt,
                trace_id=trace,
                details=details,
            ),
        )
    raw = raw if isinstance(raw, dict) else {}
    provider, model = raw.get("provider"), raw.get("model_version")
    return (
        TimelineEntry(
            rid,
            at,
            TopicKind.GENERATIONS,
            EventKind.RECORDED,
            f"generation recorded ({provider}/{model})",
            attempt=attempt,
            asset=(raw.get("blob") or {}).get("uri") if isinstance(raw.get("blob"), dict) else None,
            trace_id=trace,
            details={"provider": _i(provider), "model": _i(model), "cost": raw.get("cost")},
        ),
    )
