"""The notify stage: completion webhooks, with the retry schedule kept in Kafka.

The deliver stage writes one ``WebhookJob`` per target to ``.webhooks``. A job is tried once;
a retryable failure is written to retry topic *n* (``.webhooks.retry.<n>``) due
``schedule[n]`` seconds later. Every record in one retry topic waits the same delay, so they
come due in the order they were written and one reader can sleep on each in turn; a restart
resumes from the committed offsets. A job that fails for good (the schedule ran out, a final
4xx, a refused destination) goes to ``.deadletter`` with the reason.

A 410 Gone disables the endpoint for good: it is written to the compacted
``.webhooks.disabled`` topic, which every worker reads to its end before taking any job and
follows while running, so a restart or another worker does not call it again. An operator
re-enables it with ``assetline webhooks enable`` (a tombstone).

Webhooks are read by plain aiokafka consumers (group ``<app_id>-notify``), one per topic,
outside Faust's shared fetch loop: a receiver that is slow, or a retry that sleeps for hours,
must never hold up the delivery line, which shares that loop's back-pressure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from prometheus_client import Counter, Gauge

from agents.deliver.webhooks.disabled import (
    DisabledEndpoints,
    DisabledRecordError,
    encode_entry,
    redact_url,
)
from agents.deliver.webhooks.payload import event_payload
from agents.deliver.webhooks.pinning import WebhookClient
from agents.deliver.webhooks.schedule import RetrySchedule
from agents.deliver.webhooks.sender import StepKind, attempt_once
from streams.client import open_topic_reader
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

    def __init__(
        self,
        settings: Settings,
        codecs: Codecs,
        calls: Counter,
        disabled_gauge: Gauge | None = None,
    ) -> None:
        self.settings = settings
        self.codecs = codecs
        self.calls = calls
        self.disabled_gauge = disabled_gauge
        self.schedule = RetrySchedule(delays=tuple(settings.webhook_schedule_s))
        self.disabled = DisabledEndpoints()
        self.names = TopicNames.with_prefix(settings.topic_prefix)
        self.retry_topics = [
            self.names.webhook_retry(tier) for tier in range(1, len(self.schedule.delays))
        ]
        self._client: WebhookClient | None = None
        self._producer: AIOKafkaProducer | None = None

    async def run(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            self._client = await stack.enter_async_context(WebhookClient())
            self._producer = AIOKafkaProducer(
                bootstrap_servers=self.settings.kafka_bootstrap,
                acks="all",
                enable_idempotence=True,
            )
            await self._producer.start()
            stack.push_async_callback(self._producer.stop)
            registry = await self._open_registry()
            stack.push_async_callback(registry.stop)
            # every 410 any worker ever saw, before the first job: a restart must not call again
            await self._catch_up(registry)
            log.info("notify: %d endpoint(s) disabled by 410 Gone", len(self.disabled))
            await asyncio.gather(
                self._follow(registry),
                self._consume(self.names.webhooks, CONCURRENCY),
                *(self._consume(topic, 1) for topic in self.retry_topics),
            )

    async def _open_registry(self) -> AIOKafkaConsumer:
        """A group-less reader of every partition of ``.webhooks.disabled``, from the start.

        Every worker reads all of it: a 410 seen by any worker applies to all of them.
        """
        topic = self.names.webhooks_disabled
        probe = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap, enable_auto_commit=False
        )
        await probe.start()
        try:
            exists = topic in await probe.topics()
        finally:
            await probe.stop()
        if not exists:  # without it a restart would call every disabled endpoint again
            raise RuntimeError(f"topic {topic} is missing; create it with 'assetline topics'")
        return await open_topic_reader(self.settings.kafka_bootstrap, topic)

    async def _catch_up(self, registry: AIOKafkaConsumer) -> None:
        """Apply ``.webhooks.disabled`` up to its end offsets as of now."""
        partitions = list(registry.assignment())
        ends = await registry.end_offsets(partitions)
        behind = set(partitions)
        while behind:
            for tp in list(behind):
                if await registry.position(tp) >= ends[tp]:
                    behind.discard(tp)
            if behind:
                self._apply(await registry.getmany(*behind, timeout_ms=1000))

    async def _follow(self, registry: AIOKafkaConsumer) -> None:
        """Apply what other workers (410s) and operators (re-enables) write from now on."""
        while True:
            self._apply(await registry.getmany(timeout_ms=500))

    def _apply(
        self, batches: Mapping[TopicPartition, Sequence[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        for records in batches.values():
            for record in records:
                try:
                    self.disabled.apply(record.key, record.value)
                except DisabledRecordError as exc:
                    log.warning("notify: skipping %s[%s]@%s: %s", record.topic,
                                record.partition, record.offset, exc)  # fmt: skip
        self._count_disabled()

    def _count_disabled(self) -> None:
        if self.disabled_gauge is not None:
            self.disabled_gauge.set(len(self.disabled))

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
            await self._disable(job, step.result.status or 410)
            return
        if step.kind is StepKind.RETRY and step.delay_s is not None:
            await self._retry(job, step.delay_s)
            return
        result = step.result
        reason = (
            f"webhook {job.webhook_id} to {redact_url(job.url)} gave up after attempt "
            f"{job.delivery_attempt}: {result.error_message or result.status}"
        )
        await self._dead_letter(record, result.error_code or "webhook.failed", reason)

    async def _disable(self, job: WebhookJob, status: int) -> None:
        """Disable here at once, and for every worker through the compacted topic."""
        entry = self.disabled.disable(job.url, job.webhook_id, status)
        self._count_disabled()
        key, value = encode_entry(entry)
        assert self._producer is not None
        await self._producer.send_and_wait(self.names.webhooks_disabled, key=key, value=value)
        # origin and digest only: the path of some webhook URLs is itself a token
        log.warning("notify: endpoint %s (url_sha256 %s) answered %s; disabled",
                    entry.origin, entry.url_sha256, status)  # fmt: skip

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
    disabled = Gauge(
        "assetline_webhook_disabled_endpoints",
        "Endpoints disabled by a 410 Gone, as this worker knows them.",
        registry=line.registry,
    )
    notifier = Notifier(line.settings, line.codecs, calls, disabled)

    async def notify(app: Any) -> None:
        await notifier.run()

    line.app.task(notify)
