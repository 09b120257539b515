"""Format a :class:`~agents.alerts.grouping.Notice` for each channel type and send it.

Endpoints are treated as hostile exactly like completion webhooks: every attempt passes the
SSRF guard and connects only to the addresses it approved, the whole call has one deadline,
redirects are never followed, the response body is never read, and retries are bounded by the
channel file's ``retry_delays_s``. Logs name the channel, never its URL or key (a Slack
webhook URL is a credential).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from agents.alerts.channels import Channel, ChannelType
from agents.alerts.grouping import Action, Notice
from agents.egress.pinning import WebhookClient
from agents.egress.ssrf import Resolver, UnsafeDestination, check_destination, system_resolver
from agents.notify.sender import AttemptResult, AttemptVerdict, send_once
from agents.notify.signing import signed_headers

log = logging.getLogger(__name__)

#: PagerDuty refuses a summary longer than 1024 characters; Slack sections take 3000.
MAX_SUMMARY: Final = 1000
Sleep = Callable[[float], Awaitable[object]]


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).isoformat(timespec="seconds")


def _clip(text: str, limit: int = MAX_SUMMARY) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def headline(notice: Notice) -> str:
    """One line a person reads first: what, about whom, how many, resolved or not."""
    cause = notice.cause
    if notice.action is Action.RESOLVE:
        return f"RESOLVED {cause.kind} for {cause.subject}"
    times = "1 alert" if notice.count == 1 else f"{notice.count} alerts"
    return f"[{notice.severity.label.upper()}] {cause.kind} for {cause.subject}: {times}"


def _slack_escape(text: str) -> str:
    """Slack's three control characters: a message can never become an @channel mention."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_body(notice: Notice) -> dict[str, Any]:
    """A Slack incoming-webhook message: ``text`` (notifications) and ``blocks`` (the card)."""
    title = _slack_escape(headline(notice))
    summary = _slack_escape(_clip(notice.summary))
    window = f"{_iso(notice.first_at)} .. {_iso(notice.last_at)}"
    return {
        "text": f"{title}: {summary}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*\n{summary}"}},
            {
                "type": "context",
                "elements": [
                    {
                        "type": "mrkdwn",
                        "text": f"severity {notice.severity.label} · {window} · "
                        f"{_slack_escape(notice.cause.dedup_key)}",
                    }
                ],
            },
        ],
    }


def pagerduty_body(notice: Notice, routing_key: str, source: str) -> dict[str, Any]:
    """An Events API v2 event; a resolve names the same ``dedup_key`` as its triggers."""
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": notice.action.value,
        "dedup_key": notice.cause.dedup_key,
    }
    if notice.action is Action.TRIGGER:
        event["payload"] = {
            "summary": _clip(f"{headline(notice)}: {notice.summary}", 1024),
            "source": source,
            "severity": notice.severity.label,
            "component": notice.cause.subject[:255],
            "group": notice.cause.kind,
            "class": notice.cause.kind,
            "custom_details": notice_fields(notice),
        }
    return event


def notice_fields(notice: Notice) -> dict[str, Any]:
    """The notice as plain JSON (the generic webhook's body, PagerDuty's custom details)."""
    return {
        "type": f"assetline.alert.{notice.action.value}",
        "action": notice.action.value,
        "dedup_key": notice.cause.dedup_key,
        "kind": notice.cause.kind,
        "subject": notice.cause.subject,
        "severity": notice.severity.label,
        "count": notice.count,
        "summary": _clip(notice.summary),
        "tenant": notice.tenant,
        "first_at": _iso(notice.first_at),
        "last_at": _iso(notice.last_at),
    }


def notice_id(notice: Notice) -> str:
    """Stable per message, so a retried call is recognised as the same one."""
    seed = f"{notice.cause.dedup_key}|{notice.action.value}|{notice.last_at:.6f}"
    return "alert_" + hashlib.sha256(seed.encode("utf-8")).hexdigest()[:32]


def request_for(channel: Channel, notice: Notice, now: datetime) -> tuple[bytes, dict[str, str]]:
    """The body and the extra headers of one call to ``channel``."""
    kind = channel.spec.type
    if kind is ChannelType.SLACK:
        return _json(slack_body(notice)), {}
    if kind is ChannelType.PAGERDUTY:
        assert channel.routing_key is not None  # checked when the file was loaded
        return _json(pagerduty_body(notice, channel.routing_key, channel.spec.source)), {}
    assert channel.secret is not None
    body = _json(notice_fields(notice))
    return body, signed_headers(channel.secret, notice_id(notice), now, body)


def _json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Sent:
    """How one notice went to one channel."""

    channel: str
    delivered: bool
    attempts: int
    status: int | None = None
    error_code: str | None = None


async def send_notice(
    client: WebhookClient,
    channel: Channel,
    notice: Notice,
    *,
    allow: Sequence[str] = (),
    delays_s: Sequence[float] = (0.0, 2.0, 10.0),
    timeout_s: float = 10.0,
    resolver: Resolver = system_resolver,
    sleep: Sleep = asyncio.sleep,
) -> Sent:
    """Send until a 2xx, a final answer (4xx but 408/429), a refused destination, or the
    end of ``delays_s`` (the wait before each attempt; its length bounds the attempts)."""
    last = AttemptResult(None)
    tried = 0
    for attempt, delay in enumerate(delays_s, start=1):
        tried = attempt
        if delay > 0:
            await sleep(delay)
        try:
            async with asyncio.timeout(timeout_s):
                destination = await check_destination(channel.url, allow, resolver)
        except UnsafeDestination as exc:
            if not exc.retryable:
                log.warning(
                    "alert channel %s refused by the SSRF guard (%s)", channel.name, exc.code
                )
                return Sent(channel.name, False, attempt - 1, error_code=exc.code)
            last = AttemptResult(None, error_code=exc.code)
            continue
        except TimeoutError:
            last = AttemptResult(None, error_code="webhook.timeout")
            continue
        body, headers = request_for(channel, notice, datetime.now(UTC))
        last = await send_once(client, destination, body, headers, timeout_s)
        verdict = last.verdict
        if verdict is AttemptVerdict.DELIVERED:
            return Sent(channel.name, True, attempt, last.status)
        if verdict is not AttemptVerdict.RETRY:  # 410 or another 4xx: asking again won't help
            break
    log.warning(
        "alert channel %s: %s not delivered (%s)",
        channel.name, notice.cause.dedup_key, last.error_code or last.status,
    )  # fmt: skip
    return Sent(channel.name, False, tried, last.status, last.error_code)
