"""Deliver one completion webhook: guard, sign, POST, classify, retry on the schedule.

Every attempt re-checks the SSRF guard (DNS may change between attempts) and connects only to
the addresses that check approved (:mod:`~agents.egress.pinning`), is signed with a
fresh timestamp and the same ``webhook-id``, and never follows redirects. The outcome says
whether the schedule ran out, so the caller can dead-letter the event.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import httpx

from agents.egress.pinning import WebhookClient
from agents.egress.ssrf import (
    Destination,
    Resolver,
    UnsafeDestination,
    check_destination,
    system_resolver,
)
from agents.notify.disabled import DisabledEndpoints
from agents.notify.schedule import RetrySchedule, parse_retry_after
from agents.notify.signing import signed_headers
from schemas.records import AssetCompleted
from schemas.webhook_event import event_payload, webhook_id
from streams.tracing import outgoing

USER_AGENT = "assetline-webhooks/1"
Sleep = Callable[[float], Awaitable[object]]


class AttemptVerdict(StrEnum):
    """What one attempt means for the delivery."""

    DELIVERED = "delivered"
    DISABLED = "disabled"  # 410 Gone: the receiver asked never to be called again
    RETRY = "retry"
    FINAL = "final"


@dataclass(frozen=True)
class AttemptResult:
    """One POST as seen by the sender: a status, or an error code when no response came."""

    status: int | None
    retry_after_s: float | None = None
    error_code: str | None = None
    error_message: str | None = None

    @property
    def verdict(self) -> AttemptVerdict:
        return classify(self.status)


def classify(status: int | None) -> AttemptVerdict:
    """2xx delivered, 410 disabled, no response/3xx/408/429/5xx retried, other 4xx final."""
    if status is None:
        return AttemptVerdict.RETRY
    if 200 <= status < 300:
        return AttemptVerdict.DELIVERED
    if status == 410:
        return AttemptVerdict.DISABLED
    if status in (408, 429) or status >= 500 or 300 <= status < 400:
        return AttemptVerdict.RETRY
    return AttemptVerdict.FINAL


@dataclass(frozen=True)
class WebhookOutcome:
    """How a delivery ended; ``exhausted`` means the schedule ran out (dead-letter it)."""

    webhook_id: str
    delivered: bool
    attempts: int
    last_status: int | None = None
    disabled: bool = False
    exhausted: bool = False
    error_code: str | None = None
    error_message: str | None = None


def _status_error(status: int) -> tuple[str | None, str | None]:
    if 200 <= status < 300:
        return None, None
    if 300 <= status < 400:
        return "webhook.redirect", f"receiver answered {status}; redirects are not followed"
    if status == 410:
        return "webhook.gone", "receiver answered 410 Gone; endpoint disabled"
    return "webhook.http_status", f"receiver answered {status}"


async def send_once(
    client: WebhookClient,
    destination: Destination,
    body: bytes,
    headers: dict[str, str],
    timeout_s: float,
) -> AttemptResult:
    """POST once to the guard's approved addresses, without following redirects.

    ``timeout_s`` bounds the whole call (connect, send, status line and headers, close), not
    each read: httpx's own timeouts restart with every byte, so a receiver trickling its
    headers a byte a second would hold the call for ever. The response body is never read
    (it may be huge), and h11 bounds the head it buffers (100 KiB).
    """
    request_headers = {"content-type": "application/json", "user-agent": USER_AGENT, **headers}
    try:
        async with asyncio.timeout(timeout_s):
            async with client.post(
                destination,
                content=body,
                headers=request_headers,
                timeout=httpx.Timeout(timeout_s),
            ) as response:
                status = response.status_code
                retry_after = parse_retry_after(response.headers.get("retry-after"))
    except httpx.TimeoutException as exc:
        return AttemptResult(None, error_code="webhook.timeout", error_message=type(exc).__name__)
    except TimeoutError:  # the deadline of the whole call
        return AttemptResult(
            None, error_code="webhook.timeout", error_message=f"no answer within {timeout_s:g} s"
        )
    except httpx.TransportError as exc:
        # the class name only: httpx messages can carry the URL, and URLs can carry tokens
        return AttemptResult(None, error_code="webhook.connect", error_message=type(exc).__name__)
    code, message = _status_error(status)
    return AttemptResult(status, retry_after, code, message)


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def deliver(
    client: WebhookClient,
    url: str,
    secret: str,
    done: AssetCompleted,
    schedule: RetrySchedule,
    allow: Sequence[str],
    sleep: Sleep = asyncio.sleep,
    *,
    disabled: DisabledEndpoints | None = None,
    resolver: Resolver = system_resolver,
    timeout_s: float = 10.0,
    clock: Callable[[], datetime] = _utc_now,
) -> WebhookOutcome:
    """Deliver ``done`` to ``url`` until a final answer or the end of ``schedule``.

    ``attempts`` counts tries, including ones whose host did not resolve; a destination the
    guard refuses ends the delivery at once (no request is sent to it).
    """
    msg_id = webhook_id(done.request_id, done.attempt)
    if disabled is not None and url in disabled:
        return WebhookOutcome(
            webhook_id=msg_id,
            delivered=False,
            attempts=0,
            disabled=True,
            error_code="webhook.disabled",
            error_message="endpoint answered 410 Gone before; not called again",
        )
    body = event_payload(done)
    attempt = 0
    first_delay = schedule.delays[0]
    if first_delay > 0:
        await sleep(first_delay)
    while True:
        attempt += 1
        step = await attempt_once(
            client, url, secret, msg_id, body, attempt, schedule, allow,
            resolver=resolver, timeout_s=timeout_s, clock=clock,
        )  # fmt: skip
        last = step.result
        if step.kind is StepKind.DELIVERED:
            return WebhookOutcome(msg_id, True, attempt, last_status=last.status)
        if step.kind is StepKind.DISABLED:
            if disabled is not None:
                disabled.disable(url, msg_id, last.status or 410)
            return _outcome(msg_id, attempt, last, exhausted=False, gone=True)
        if step.kind is StepKind.REFUSED:
            return _outcome(msg_id, attempt - 1, last, exhausted=False)
        if step.kind is StepKind.FINAL:
            # a final answer (4xx) is not an exhausted schedule; a retryable one at its end is
            return _outcome(
                msg_id, attempt, last, exhausted=last.verdict is not AttemptVerdict.FINAL
            )
        assert step.delay_s is not None  # RETRY always carries its delay
        await sleep(step.delay_s)


class StepKind(StrEnum):
    """What one attempt decided for the delivery as a whole."""

    DELIVERED = "delivered"
    RETRY = "retry"  # try again after ``delay_s``
    DISABLED = "disabled"  # 410 Gone
    REFUSED = "refused"  # the SSRF guard refused the destination; nothing was sent
    FINAL = "final"  # a final answer, or the schedule ran out


@dataclass(frozen=True)
class Step:
    kind: StepKind
    result: AttemptResult
    delay_s: float | None = None


async def attempt_once(
    client: WebhookClient,
    url: str,
    secret: str,
    msg_id: str,
    body: bytes,
    attempt: int,
    schedule: RetrySchedule,
    allow: Sequence[str],
    *,
    resolver: Resolver = system_resolver,
    timeout_s: float = 10.0,
    clock: Callable[[], datetime] = _utc_now,
) -> Step:
    """One guarded, signed attempt (number ``attempt``, from 1) and what it means next.

    Each attempt is signed with a fresh timestamp and the same ``msg_id``, so a receiver can
    both check freshness and deduplicate. Used by :func:`deliver` and by the notify stage,
    which keeps the schedule in Kafka instead of in memory.
    """
    started = time.monotonic()
    try:
        async with asyncio.timeout(timeout_s):  # a resolver that never answers is a timeout
            destination = await check_destination(url, allow, resolver)
    except UnsafeDestination as exc:
        result = AttemptResult(None, error_code=exc.code, error_message=str(exc))
        if not exc.retryable:
            return Step(StepKind.REFUSED, result)
    except TimeoutError:
        result = AttemptResult(
            None, error_code="webhook.timeout", error_message="the host did not resolve in time"
        )
    else:
        headers = signed_headers(secret, msg_id, clock(), body)
        # W3C trace context: the receiver can join the request's trace (streams/tracing.py)
        headers.update((k, v.decode("ascii")) for k, v in outgoing())
        left = max(timeout_s - (time.monotonic() - started), 0.001)  # one deadline per attempt
        result = await send_once(client, destination, body, headers, left)
        verdict = result.verdict
        if verdict is AttemptVerdict.DELIVERED:
            return Step(StepKind.DELIVERED, result)
        if verdict is AttemptVerdict.DISABLED:
            return Step(StepKind.DISABLED, result)
        if verdict is AttemptVerdict.FINAL:
            return Step(StepKind.FINAL, result)
    delay = schedule.next_delay(attempt, result.retry_after_s)
    if delay is None:
        return Step(StepKind.FINAL, result)
    return Step(StepKind.RETRY, result, delay)


def _outcome(
    msg_id: str, attempts: int, last: AttemptResult, *, exhausted: bool, gone: bool = False
) -> WebhookOutcome:
    return WebhookOutcome(
        webhook_id=msg_id,
        delivered=False,
        attempts=attempts,
        last_status=last.status,
        disabled=gone,
        exhausted=exhausted,
        error_code=last.error_code,
        error_message=last.error_message,
    )
