"""The notify stage: completion webhooks, with the retry schedule kept in Kafka.

The deliver stage writes one ``WebhookJob`` per target to ``.webhooks``. A job is tried once;
a retryable failure is written, with its ``due_at``, to the retry topic whose delay fits
(``.webhooks.retry.<n>`` holds jobs due about ``schedule[n]`` seconds after they were written,
``Retry-After`` capped by the schedule's longest delay). A job that fails for good (the
schedule ran out, a final 4xx, a refused destination) goes to ``.deadletter`` with the reason.

No consumer ever sleeps in its poll loop: it keeps polling (so it stays in its group however
far away a job is due), holds the jobs read in a due-time queue (pausing its partitions when
``webhook_buffer`` of them wait), and runs each due job as its own task, at most
``CONCURRENCY`` per consumer and ``webhook_origin_concurrency`` per receiver origin, so one
slow receiver never delays another's jobs; a due job whose receiver already has a full
backlog is written back to a retry topic uncalled (same attempt, due later) instead of
filling the buffer. A partition is committed only up to its first job not yet finished
(delivered, dead-lettered, or durably written to a retry topic): a crash or a rebalance
re-reads what was waiting, never loses it. A commit refused after a rebalance is logged and
the jobs are re-read by whoever owns the partition next.

A 410 Gone disables the endpoint for good: it is written to the compacted
``.webhooks.disabled`` topic, which every worker reads to its end before taking any job and
follows while running, so a restart or another worker does not call it again. An operator
re-enables it with ``assetline webhooks enable`` (a tombstone).

Webhooks are read by plain aiokafka consumers (group ``<app_id>-notify``), one per topic,
outside Faust's shared fetch loop: a receiver that is slow, or a retry due in hours, must
never hold up the delivery line, which shares that loop's back-pressure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from aiokafka import (
    AIOKafkaConsumer,
    AIOKafkaProducer,
    ConsumerRebalanceListener,
    ConsumerRecord,
    TopicPartition,
)
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import (
    CommitFailedError,
    IllegalGenerationError,
    KafkaError,
    RebalanceInProgressError,
    UnknownMemberIdError,
)
from prometheus_client import Counter, Gauge

from agents.egress.pinning import WebhookClient
from agents.notify.disabled import (
    DisabledEndpoints,
    DisabledRecordError,
    encode_entry,
    redact_url,
    url_origin,
)
from agents.notify.due import DueQueue, PartitionProgress, decode_done
from agents.notify.schedule import RetrySchedule
from agents.notify.sender import StepKind, attempt_once
from schemas.records import WebhookJob
from schemas.webhook_event import event_payload
from streams.blobs import BlobStore
from streams.codecs import CodecError, Codecs
from streams.dead_letters import dead_letter_record, park_value
from streams.json_logs import request_context, request_id_of_key
from streams.kafka import batches_to_end, open_topic_reader, topic_exists
from streams.kafka_security import client_kwargs
from streams.settings import Settings
from streams.topics import TopicNames
from streams.trace_context import extract
from streams.tracing import CONSUMER, outgoing, span, tracer_for

if TYPE_CHECKING:
    from streams.app import Line

STAGE = "notify"
#: Due jobs one consumer (one topic, retry topics too) runs at a time.
CONCURRENCY = 8
#: The longest a consumer waits in ``getmany``: how late a job that came due may start.
POLL_MS = 500
#: Jobs one receiver origin may have running or waiting for a call slot, per slot; more are
#: written back to a retry topic (same attempt, due later), so they never fill a consumer.
BACKLOG_PER_SLOT = 8
#: A job whose result could not be written to Kafka is tried again this much later, doubling.
WRITE_BACKOFF_S = 5.0
MAX_WRITE_BACKOFF_S = 300.0
#: How long a newly assigned partition waits for its previous owner's commit metadata.
COMMIT_METADATA_TIMEOUT_S = 5.0
#: Errors of a commit refused because the group moved on: the jobs are re-read, nothing lost.
REBALANCED = (CommitFailedError, RebalanceInProgressError, IllegalGenerationError,
              UnknownMemberIdError)  # fmt: skip

log = logging.getLogger(__name__)


class Notifier:
    """Reads webhook jobs, calls receivers, schedules retries, dead-letters what gives up."""

    def __init__(
        self,
        settings: Settings,
        codecs: Codecs,
        calls: Counter,
        disabled_gauge: Gauge | None = None,
        blobs: BlobStore | None = None,
    ) -> None:
        self.settings = settings
        self.codecs = codecs
        self.calls = calls
        self.disabled_gauge = disabled_gauge
        #: where an oversize dead-letter value is parked (None: it is truncated instead)
        self.blobs = blobs
        self.schedule = RetrySchedule(delays=tuple(settings.webhook_schedule_s))
        self.disabled = DisabledEndpoints()
        self.names = TopicNames.with_prefix(settings.topic_prefix)
        self.retry_topics = [
            self.names.webhook_retry(tier) for tier in range(1, len(self.schedule.delays))
        ]
        self._client: WebhookClient | None = None
        self._producer: AIOKafkaProducer | None = None
        self._admin: AIOKafkaAdminClient | None = None
        self._origins: dict[str, _Gate] = {}
        #: every job runs in a span of its record's trace (streams/tracing.py)
        self.tracer = tracer_for(settings)

    async def run(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            self._client = await stack.enter_async_context(WebhookClient())
            self._producer = AIOKafkaProducer(
                **client_kwargs(self.settings),
                acks="all",
                enable_idempotence=True,
            )
            await self._producer.start()
            stack.push_async_callback(self._producer.stop)
            # reads the commit metadata of a partition newly assigned (jobs already finished)
            self._admin = AIOKafkaAdminClient(**client_kwargs(self.settings))
            await self._admin.start()
            stack.push_async_callback(self._admin.close)
            registry = await self._open_registry()
            stack.push_async_callback(registry.stop)
            # every 410 any worker ever saw, before the first job: a restart must not call again
            await self._catch_up(registry)
            log.info("notify: %d endpoint(s) disabled by 410 Gone", len(self.disabled))
            await asyncio.gather(
                self._follow(registry),
                self._consume(self.names.webhooks),
                *(self._consume(topic) for topic in self.retry_topics),
            )

    async def _open_registry(self) -> AIOKafkaConsumer:
        """A group-less reader of every partition of ``.webhooks.disabled``, from the start.

        Every worker reads all of it: a 410 seen by any worker applies to all of them.
        """
        topic = self.names.webhooks_disabled
        if not await topic_exists(self.settings, topic):
            # without it a restart would call every disabled endpoint again
            raise RuntimeError(f"topic {topic} is missing; create it with 'assetline topics'")
        return await open_topic_reader(self.settings, topic)

    async def _catch_up(self, registry: AIOKafkaConsumer) -> None:
        """Apply ``.webhooks.disabled`` up to its end offsets as of now."""
        async for batch in batches_to_end(registry):
            self._apply(batch)

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

    async def _consume(self, topic: str) -> None:
        """Run one topic's consumer; an error restarts it (re-reading), never the worker."""
        while True:
            try:
                await _Lane(self, topic, CONCURRENCY).run()
            except KafkaError as exc:
                log.warning("notify: consumer of %s stopped (%s); restarting in %g s",
                            topic, type(exc).__name__, WRITE_BACKOFF_S)  # fmt: skip
            except Exception:  # a bug here must not take every other stage down with it
                log.exception("notify: consumer of %s crashed; restarting in %g s",
                              topic, WRITE_BACKOFF_S)  # fmt: skip
            await asyncio.sleep(WRITE_BACKOFF_S)

    @contextlib.asynccontextmanager
    async def _origin_slot(self, url: str) -> AsyncIterator[None]:
        """One of the ``webhook_origin_concurrency`` call slots of ``url``'s origin.

        Shared by every consumer of this worker, so a slow receiver holds at most that many
        calls whatever topics its jobs are on; a gate is dropped when nobody uses it.
        """
        origin = url_origin(url)
        gate = self._origins.get(origin)
        if gate is None:
            gate = self._origins[origin] = _Gate(
                asyncio.Semaphore(self.settings.webhook_origin_concurrency)
            )
        gate.users += 1
        try:
            async with gate.slots:
                yield
        finally:
            gate.users -= 1
            if gate.users == 0:
                del self._origins[origin]

    async def _handle_safely(self, record: ConsumerRecord[bytes, bytes], job: WebhookJob) -> None:
        with request_context(request_id_of_key(record.key)):  # log lines name the request
            try:
                await self._call(record, job)
            except KafkaError:
                raise  # the broker, not the job: the consumer tries the job again later
            except Exception as exc:  # a bug for one job must not stop the others
                log.exception("notify: unexpected error; dead-lettering the job")
                reason = f"{type(exc).__name__}: {exc}"
                await self._dead_letter(record, f"{STAGE}.crashed", reason)

    def _decode(self, record: ConsumerRecord[bytes, bytes]) -> WebhookJob | CodecError:
        try:
            return self.codecs.webhook_job.decode(record.value or b"")
        except CodecError as exc:
            return exc

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> None:
        """Decode and run one job now, whatever its ``due_at`` (the consumers wait for that)."""
        job = self._decode(record)
        with request_context(request_id_of_key(record.key)):  # log lines name the request
            if isinstance(job, CodecError):
                await self._dead_letter(record, job.code, str(job))
                return
            await self._call(record, job)

    async def _call(self, record: ConsumerRecord[bytes, bytes], job: WebhookJob) -> None:
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

    def _deferral(self, url: str) -> float | None:
        """Seconds to put off a due job whose receiver already has a full backlog, else None.

        A slow receiver keeps ``webhook_origin_concurrency`` calls running and a bounded
        queue waiting; a job beyond that goes back to a retry topic (durably, same attempt),
        due about when the queue ahead of it will have drained, rather than filling the
        consumer's buffer and so holding up every other receiver's jobs.
        """
        gate = self._origins.get(url_origin(url))
        slots = self.settings.webhook_origin_concurrency
        if gate is None or gate.users < BACKLOG_PER_SLOT * slots or not self.retry_topics:
            return None
        drain = gate.users / slots * self.settings.webhook_timeout_s
        return min(max(drain, self.schedule.delays[1]), self.schedule.longest_delay_s)

    async def _defer(self, job: WebhookJob, wait_s: float) -> None:
        self.calls.labels("deferred").inc()
        await self._write_back(job, wait_s, job.delivery_attempt)

    async def _retry(self, job: WebhookJob, delay_s: float) -> None:
        await self._write_back(job, delay_s, job.delivery_attempt + 1)

    async def _write_back(self, job: WebhookJob, delay_s: float, attempt: int) -> None:
        """Write ``job`` as attempt ``attempt`` to the retry topic that fits ``delay_s``."""
        due = datetime.now(UTC) + timedelta(seconds=delay_s)
        again = job.model_copy(update={"delivery_attempt": attempt, "due_at": due})
        topic = self.retry_topics[min(self.schedule.tier_for(delay_s), len(self.retry_topics)) - 1]
        assert self._producer is not None
        await self._producer.send_and_wait(
            topic,
            key=job.completion.request_id.encode("utf-8"),
            value=self.codecs.webhook_job.encode(again),
            headers=outgoing(),  # the job's trace, one span (this attempt) further
        )

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], code: str, reason: str
    ) -> None:
        """Park ``record`` on ``.deadletter``, fitted like every stage's (oversize value parked).

        A failed send raises: the lane keeps the job unfinished and writes it again later.
        """
        dead = await dead_letter_record(
            stage=STAGE,
            code=code,
            reason=reason,
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value or b"",
            original=outgoing(list(record.headers or ())),
            limit=self.settings.max_message_bytes,
            park=None if self.blobs is None else partial(park_value, self.blobs),
            logger=log,
        )
        assert self._producer is not None
        await self._producer.send_and_wait(
            self.names.deadletter,
            key=dead.key,
            value=None if record.value is None else dead.value,  # null stays null, not b""
            headers=dead.headers,
        )


@dataclass
class _Gate:
    """The call slots of one receiver origin, and how many jobs hold or wait for one."""

    slots: asyncio.Semaphore
    users: int = 0


@dataclass(eq=False)
class _Job:
    """A job read by a consumer: where it came from, when it is due, whether it started."""

    tp: TopicPartition
    record: ConsumerRecord[bytes, bytes]
    job: WebhookJob | CodecError
    progress: PartitionProgress
    started: bool = False
    write_failures: int = 0
    task: asyncio.Task[None] | None = field(default=None, repr=False)


class _Lane(ConsumerRebalanceListener):  # type: ignore[misc]
    """One consumer of one webhook topic: polls without pause and runs jobs when they come due."""

    def __init__(self, notifier: Notifier, topic: str, concurrency: int) -> None:
        self.notifier = notifier
        self.settings = notifier.settings
        self.topic = topic
        self.slots = asyncio.Semaphore(concurrency)
        self.waiting: DueQueue[_Job] = DueQueue()
        self.running: set[_Job] = set()
        self.progress: dict[TopicPartition, PartitionProgress] = {}
        self.consumer: AIOKafkaConsumer | None = None
        self._last_commit = 0.0

    async def run(self) -> None:
        settings = self.settings
        poll_interval_ms = int(settings.webhook_max_poll_interval_s * 1000)
        consumer = AIOKafkaConsumer(
            **client_kwargs(settings),
            group_id=f"{settings.app_id}-{STAGE}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_interval_ms=poll_interval_ms,
            rebalance_timeout_ms=poll_interval_ms,  # as the Java client: time to finish calls
            session_timeout_ms=int(settings.session_timeout_s * 1000),
            heartbeat_interval_ms=int(settings.heartbeat_interval_s * 1000),
        )
        consumer.subscribe([self.topic], listener=self)
        self.consumer = consumer
        try:  # a start that fails (broker down) must stop it too, or it leaks every retry
            await consumer.start()
            while True:
                await self._poll(consumer)
        finally:
            for item in list(self.running):
                if item.task is not None:
                    item.task.cancel()  # not committed: read again by whoever runs it next
            await consumer.stop()

    @property
    def held(self) -> int:
        return len(self.waiting) + len(self.running)

    async def _poll(self, consumer: AIOKafkaConsumer) -> None:
        """One turn: read what is there, start what is due, pause or resume, commit."""
        now = time.time()
        due = self.waiting.next_due()
        wait_ms = POLL_MS if due is None else int(min(max(due - now, 0.0) * 1000, POLL_MS))
        room = max(self.settings.webhook_buffer - self.held, 1)
        batches = await consumer.getmany(timeout_ms=wait_ms, max_records=min(room, 500))
        for tp, records in batches.items():
            progress = self.progress.get(tp)
            if progress is None:
                if tp in consumer.assignment():
                    # Assigned, but its listener is still reading the commit metadata: aiokafka
                    # fetches meanwhile. Dropping the batch would lose it for this owner's whole
                    # tenure (the position moved past it), so rewind and read it again later.
                    consumer.seek(tp, records[0].offset)
                continue  # else revoked while the batch was in flight: its new owner reads it
            for record in records:
                if progress.read(record.offset):  # else it is already held
                    job = self.notifier._decode(record)
                    self.waiting.push(self._due(job), _Job(tp, record, job, progress))
        for item in self.waiting.pop_due(time.time()):
            self._start(item)
        assigned = consumer.assignment()
        if self.held >= self.settings.webhook_buffer:
            consumer.pause(*assigned)
        elif consumer.paused():
            consumer.resume(*consumer.paused())
        if time.monotonic() - self._last_commit >= self.settings.commit_interval_s:
            self._last_commit = time.monotonic()
            await self._commit(consumer, list(self.progress))

    def _due(self, job: WebhookJob | CodecError) -> float:
        """When to run ``job``: its ``due_at``, never later than the schedule allows from now.

        A job cannot hold its partition's commits back for longer than the schedule's
        longest delay (with jitter), whatever ``due_at`` it carries.
        """
        now = time.time()
        if isinstance(job, CodecError):
            return now
        schedule = self.notifier.schedule
        latest = now + schedule.longest_delay_s * (1 + schedule.jitter)
        return min(job.due_at.timestamp(), latest)

    def _start(self, item: _Job) -> None:
        self.running.add(item)
        item.task = asyncio.create_task(self._run_job(item))

    def _owns(self, item: _Job) -> bool:
        return self.progress.get(item.tp) is item.progress

    async def _run_job(self, item: _Job) -> None:
        notifier = self.notifier
        parent = extract(item.record.headers)
        with span(notifier.tracer, STAGE, parent, kind=CONSUMER):
            await self._run_traced_job(item)

    async def _run_traced_job(self, item: _Job) -> None:
        notifier, job = self.notifier, item.job
        try:
            if isinstance(job, CodecError):
                item.started = True
                await notifier._dead_letter(item.record, job.code, str(job))
            elif (wait_s := notifier._deferral(job.url)) is not None:
                item.started = True  # nothing is called: the job is written back, due later
                await notifier._defer(job, wait_s)
            else:
                async with notifier._origin_slot(job.url), self.slots:
                    if not self._owns(item):
                        return  # the partition was revoked: its new owner re-reads the job
                    item.started = True
                    await notifier._handle_safely(item.record, job)
            item.progress.finish(item.record.offset)
        except KafkaError as exc:  # its result (retry, dead letter, 410) was not written
            item.write_failures += 1
            backoff = min(WRITE_BACKOFF_S * 2 ** (item.write_failures - 1), MAX_WRITE_BACKOFF_S)
            log.warning("notify: could not write the result of %s[%s]@%s (%s); again in %g s",
                        item.tp.topic, item.tp.partition, item.record.offset,
                        type(exc).__name__, backoff)  # fmt: skip
            if self._owns(item):  # not finished, so never committed past meanwhile
                item.started = False
                self.waiting.push(time.time() + backoff, item)
        finally:
            self.running.discard(item)

    async def _commit(self, consumer: AIOKafkaConsumer, tps: Sequence[TopicPartition]) -> None:
        """Commit each partition up to its first unfinished job; a refusal only means re-read."""
        offsets: dict[TopicPartition, tuple[int, str]] = {}
        for tp in tps:
            progress = self.progress.get(tp)
            offset = None if progress is None else progress.to_commit()
            if offset is not None:
                offsets[tp] = offset
        if not offsets:
            return
        try:
            await consumer.commit(offsets)
        except REBALANCED as exc:
            log.warning("notify: commit on %s refused after a rebalance (%s); its jobs will be "
                        "re-read", self.topic, type(exc).__name__)  # fmt: skip
            return
        except KafkaError as exc:
            log.warning("notify: commit on %s failed (%s); tried again", self.topic,
                        type(exc).__name__)  # fmt: skip
            return
        for tp, offset in offsets.items():
            progress = self.progress.get(tp)
            if progress is not None:
                progress.committed = offset

    async def on_partitions_revoked(self, revoked: Sequence[TopicPartition]) -> None:
        """Let the calls already made finish and commit them; drop what had not started."""
        gone = set(revoked)
        self.waiting.remove(lambda item: item.tp in gone)
        started: list[asyncio.Task[None]] = []
        for item in list(self.running):
            if item.tp in gone and item.task is not None:
                if item.started:
                    started.append(item.task)
                else:
                    item.task.cancel()
        if started:  # each call has its deadline; the writes after it are quick
            await asyncio.wait(started, timeout=self.settings.webhook_timeout_s + 5)
        assert self.consumer is not None
        await self._commit(self.consumer, [tp for tp in revoked if tp in self.progress])
        for tp in revoked:
            self.progress.pop(tp, None)

    async def on_partitions_assigned(self, assigned: Sequence[TopicPartition]) -> None:
        """Start each partition afresh, skipping the jobs its last owner committed as done."""
        finished = await self._finished_before(list(assigned))
        for tp in assigned:
            self.progress[tp] = PartitionProgress(finished.get(tp, frozenset()))

    async def _finished_before(
        self, tps: list[TopicPartition]
    ) -> dict[TopicPartition, frozenset[int]]:
        """Offsets above each committed one that its committer had finished (commit metadata).

        Without them (no admin client, or the look-up failed) every job from the committed
        offset on runs again: at least once, as before.
        """
        admin = self.notifier._admin
        if admin is None or not tps:
            return {}
        try:
            # bounded: this runs inside the rebalance callback, and a look-up that never
            # answers would keep the lane from fetching anything at all
            async with asyncio.timeout(COMMIT_METADATA_TIMEOUT_S):
                committed = await admin.list_consumer_group_offsets(
                    f"{self.settings.app_id}-{STAGE}", partitions=tps
                )
        except (KafkaError, TimeoutError) as exc:
            log.warning("notify: could not read the commit metadata of %s (%s); jobs finished "
                        "after the committed offset may run again", self.topic,
                        type(exc).__name__)  # fmt: skip
            return {}
        return {
            tp: decode_done(meta.offset, meta.metadata)
            for tp, meta in committed.items()
            if meta.offset >= 0
        }


def install(line: Line) -> None:
    calls = Counter(
        "assetline_webhook_calls",
        "Webhook calls by result (delivered, retry, disabled, refused, final; deferred: "
        "put off uncalled while its receiver's backlog is full).",
        ["result"],
        registry=line.registry,
    )
    disabled = Gauge(
        "assetline_webhook_disabled_endpoints",
        "Endpoints disabled by a 410 Gone, as this worker knows them.",
        registry=line.registry,
    )
    notifier = Notifier(line.settings, line.codecs, calls, disabled, line.blobs)

    async def notify(app: Any) -> None:
        await notifier.run()

    line.app.task(notify)
