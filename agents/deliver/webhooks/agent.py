"""The notify stage: completion webhooks, with the retry schedule kept in Kafka.

The deliver stage writes one ``WebhookJob`` per target to ``.webhooks``. A job is tried once;
a retryable failure is written to retry topic *n* (``.webhooks.retry.<n>``) due
``schedule[n]`` seconds later. Every record in one retry topic waits the same delay, so they
come due in the order they were written and one reader can sleep on each in turn; a restart
resumes from the committed offsets. A job that fails for good (the schedule ran out, a final
4xx, a refused destination) goes to ``.deadletter`` with the reason; a 410 Gone disables the
endpoint in this worker.

Webhooks are read by plain aiokafka consumers (group ``<app_id>-notify``), one per topic,
outside Faust's shared fetch loop: a receiver that is slow, or a retry that sleeps for hours,
must never hold up the delivery line, which shares that loop's back-pressure.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from prometheus_client import Counter

from agents.deliver.webhooks.payload import event_payload
from agents.deliver.webhooks.schedule import RetrySchedule
from agents.deliver.webhooks.sender import DisabledEndpoints, StepKind, attempt_once
from streams.codecs import CodecError, Codecs
from streams.deadletter import deadletter_headers
from streams.records import WebhookJob
from streams.settings import Settings
from streams.topics import TopicNames

if TYPE_CHECKING:
    from streams.app import Line

STAGE = "notify"
#: Immediate jobs run this many at a time; retry topics run one at a time (in due order).
CONCURRENCY = 8

log = logging.getLogger(__name__)


class Notifier:
    """Reads webhook jobs, calls receivers, schedules retries, dead-letters what gives up."""

    def __init__(self, settings: Settings, codecs: Codecs, calls: Counter) -> None:
        self.settings = settings
        self.codecs = codecs
        self.calls = calls
        self.schedule = RetrySchedule(delays=tuple(settings.webhook_schedule_s))
        self.disabled = DisabledEndpoints()
        self.names = TopicNames.with_prefix(settings.topic_prefix)
        self.retry_topics = [
            self.names.webhook_retry(tier) for tier in range(1, len(self.schedule.delays))
        ]
        self._client: httpx.AsyncClient | None = None
        self._producer: AIOKafkaProducer | None = None

    async def run(self) -> None:
        self._client = httpx.AsyncClient(trust_env=False)  # no proxy may bypass the guard
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap, acks="all", enable_idempotence=True
        )
        await self._producer.start()
        try:
            await asyncio.gather(
                self._consume(self.names.webhooks, CONCURRENCY),
                *(self._consume(topic, 1) for topic in self.retry_topics),
            )
        finally:
            await self._producer.stop()
            await self._client.aclose()

    async def _consume(self, topic: str, concurrency: int) -> None:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=self.settings.kafka_bootstrap,
            group_id=f"{self.settings.app_id}-{STAGE}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        await consumer.start()
        limit = asyncio.Semaphore(concurrency)

        async def one(record: ConsumerRecord[bytes, bytes]) -> None:
            async with limit:
                await self._handle_safely(record)

        try:
            while True:
                batches = await consumer.getmany(timeout_ms=500, max_records=concurrency * 4)
                for tp, records in batches.items():
                    await asyncio.gather(*(one(record) for record in records))
                    await consumer.commit({tp: records[-1].offset + 1})
        finally:
            await consumer.stop()

    async def _handle_safely(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            await self._handle(record)
        except Exception as exc:  # a bug for one job must not stop the others
            log.exception("notify: unexpected error; dead-lettering the job")
            await self._dead_letter(record, f"{STAGE}.crashed", f"{type(exc).__name__}: {exc}")

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        try:
            job = self.codecs.webhook_job.decode(record.value or b"")
        except CodecError as exc:
            await self._dead_letter(record, exc.code, str(exc))
            return
        wait = (job.due_at - datetime.now(UTC)).total_seconds()
        if wait > 0:
            await asyncio.sleep(wait)
        if job.url in self.disabled:
            self.calls.labels("disabled").inc()
            return
        name = job.secret_name or self.settings.webhook_secret_name
        secret = self.settings.api_keys.get(name)
        if secret is None:
            await self._dead_letter(record, "webhook.no_secret", f"no secret {name!r} in api_keys")
            return
        assert self._client is not None
        step = await attempt_once(
            self._client,
            job.url,
            secret.get_secret_value(),
            job.webhook_id,
            event_payload(job.completion),
            job.delivery_attempt,
            self.schedule,
            self.settings.webhook_allow,
            timeout_s=self.settings.webhook_timeout_s,
        )
        self.calls.labels(step.kind.value).inc()
        if step.kind is StepKind.DELIVERED:
            return
        if step.kind is StepKind.DISABLED:
            self.disabled.disable(job.url)
            return
        if step.kind is StepKind.RETRY and step.delay_s is not None:
            await self._retry(job, step.delay_s)
            return
        result = step.result
        reason = (
            f"webhook {job.webhook_id} to {job.url} gave up after attempt "
            f"{job.delivery_attempt}: {result.error_message or result.status}"
        )
        await self._dead_letter(record, result.error_code or "webhook.failed", reason)

    async def _retry(self, job: WebhookJob, delay_s: float) -> None:
        due = datetime.now(UTC) + timedelta(seconds=delay_s)
        again = job.model_copy(update={"delivery_attempt": job.delivery_attempt + 1, "due_at": due})
        topic = self.retry_topics[min(job.delivery_attempt, len(self.retry_topics)) - 1]
        assert self._producer is not None
        await self._producer.send_and_wait(
            topic,
            key=job.completion.request_id.encode("utf-8"),
            value=self.codecs.webhook_job.encode(again),
        )

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], code: str, reason: str
    ) -> None:
        log.warning("notify: dead-lettering %s[%s]@%s: %s", record.topic, record.partition,
                    record.offset, reason)  # fmt: skip
        headers = deadletter_headers(
            stage=STAGE,
            code=code,
            reason=reason,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            original=list(record.headers or ()),
        )
        assert self._producer is not None
        await self._producer.send_and_wait(
            self.names.deadletter, key=record.key, value=record.value, headers=headers
        )


def install(line: Line) -> None:
    calls = Counter(
        "assetline_webhook_calls",
        "Webhook calls by result (delivered, retry, disabled, refused, final).",
        ["result"],
        registry=line.registry,
    )
    notifier = Notifier(line.settings, line.codecs, calls)

    async def notify(app: Any) -> None:
        await notifier.run()

    line.app.task(notify)
