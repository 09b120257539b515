"""The notify stage: completion webhooks, with the retry schedule kept in Kafka.

The deliver stage writes one ``WebhookJob`` per target to ``.webhooks``. A job is tried once;
a retryable failure is written to retry topic *n* (``.webhooks.retry.<n>``) due
``schedule[n]`` seconds later, and that topic's agent sleeps until each record is due. Every
record in one retry topic waits the same delay, so they come due in the order they were
written: nothing waits behind a later one, and a restart resumes from the committed offsets.
A job that fails for good (the schedule ran out, a final 4xx, a refused destination) goes to
``.deadletter`` with the reason; a 410 Gone disables the endpoint in this worker.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from prometheus_client import Counter

from agents.deliver.webhooks.payload import event_payload
from agents.deliver.webhooks.schedule import RetrySchedule
from agents.deliver.webhooks.sender import DisabledEndpoints, StepKind, attempt_once
from streams.records import WebhookJob
from streams.stage import StageIO

if TYPE_CHECKING:
    from streams.app import Line

STAGE = "notify"


def install(line: Line) -> None:
    settings = line.settings
    io = StageIO(line, STAGE)
    codecs = line.codecs
    names = line.topics.names
    schedule = RetrySchedule(delays=tuple(settings.webhook_schedule_s))
    disabled = DisabledEndpoints()
    client = httpx.AsyncClient(trust_env=False)  # no proxy may bypass the SSRF guard
    calls = Counter(
        "assetline_webhook_calls",
        "Webhook calls by result (delivered, retry, disabled, refused, final).",
        ["result"],
        registry=line.registry,
    )
    retries = {
        tier: line.app.topic(
            names.webhook_retry(tier), key_serializer="raw", value_serializer="raw"
        )
        for tier in range(1, len(schedule.delays))
    }

    def secret_for(job: WebhookJob) -> str | None:
        value = settings.api_keys.get(job.secret_name or settings.webhook_secret_name)
        return value.get_secret_value() if value is not None else None

    async def handle(event: Any) -> None:
        job = await io.decode(codecs.webhook_job, event)
        if job is None:
            return
        wait = (job.due_at - datetime.now(UTC)).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
        if job.url in disabled:
            calls.labels("disabled").inc()
            return
        secret = secret_for(job)
        if secret is None:
            name = job.secret_name or settings.webhook_secret_name
            await io.dead_letter(event, "webhook.no_secret", f"no secret {name!r} in api_keys")
            return
        step = await attempt_once(
            client,
            job.url,
            secret,
            job.webhook_id,
            event_payload(job.completion),
            job.delivery_attempt,
            schedule,
            settings.webhook_allow,
            timeout_s=settings.webhook_timeout_s,
        )
        calls.labels(step.kind.value).inc()
        if step.kind is StepKind.DELIVERED:
            return
        if step.kind is StepKind.DISABLED:
            disabled.disable(job.url)
            return
        if step.kind is StepKind.RETRY and step.delay_s is not None:
            due = datetime.now(UTC) + timedelta(seconds=step.delay_s)
            again = job.model_copy(
                update={"delivery_attempt": job.delivery_attempt + 1, "due_at": due}
            )
            topic = retries[min(job.delivery_attempt, len(retries))]
            value = codecs.webhook_job.encode(again)
            await io.send(topic, job.completion.request_id, value, "retry")
            return
        result = step.result
        code = result.error_code or f"webhook.status_{result.status}"
        reason = (
            f"webhook {job.webhook_id} to {job.url} gave up after attempt "
            f"{job.delivery_attempt}: {result.error_message or result.status}"
        )
        await io.dead_letter(event, code, reason)

    def consume(topic: Any, name: str, concurrency: int) -> None:
        async def agent(stream: Any) -> None:
            async for event in stream.events():
                async with io.handling(event):
                    await handle(event)

        agent.__name__ = agent.__qualname__ = name.replace("-", "_")
        line.app.agent(topic, name=name, concurrency=concurrency)(agent)

    consume(line.topics.webhooks, STAGE, 4)
    for tier, topic in retries.items():
        consume(topic, f"{STAGE}-retry-{tier}", 1)  # one at a time: records come due in order

    @line.app.on_before_shutdown.connect
    async def _close_client(app: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await client.aclose()
