"""Deadline watchdog, the task: follows this worker's partitions and ends requests past due.

Runs in the deliver stage because that is where a request can be completed exactly once: the
ledger lives there. It never writes the ledger itself (a Faust table can only be written from
a stream event); it writes the timeout record to ``.rejected`` and the deliver agent completes
it like any other rejection (webhooks included), or drops it when a completion got there first.
So exactly-once rests on the ledger, as for every completion, and a watchdog that is wrong,
late or repeated after a restart can at worst raise an alert twice (same ``alert_id``).

For each ledger partition *p* this worker owns (its active ``.approved``/``.rejected``
partitions, read when no rebalance is under way), one group-less reader follows partition *p*
of ``.requests``, ``.requests.urgent`` and ``.review`` from the marks committed last (group
``<app_id>-watchdog``, nobody joins it; commits carry the marks), and of ``.completed`` from
its end (earlier completions are in the local ledger, asked when a request is first read).
Only requests the generate stage would admit are tracked: a refused, forged or undecodable
record never gets a completion, so it must not get a timeout either. Work per loop is
bounded: one ``getmany`` of at most ``MAX_RECORDS`` records, then, every
``deadline_check_interval_s``, at most ``MAX_TIMEOUTS`` timeouts per partition; a partition
whose readers are more than a check behind (catching up after a start) times nothing out until
they catch up, so a request whose review record is not read yet is not taken for one still in
the line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import BaseModel

from agents.deliver.watchdog import (
    DeadlinePolicy,
    Marks,
    OpenRequest,
    OpenSet,
    caught_up,
    completed_attempt,
    deadline_alert,
    timeout_from_request,
    timeout_from_review,
)
from agents.tenants import Gatekeeper
from schemas.records import GenerationRequest, ValidatedAsset
from streams.acks import acknowledged
from streams.codecs import AvroCodec, CodecError, UnknownSchemaIdError
from streams.kafka_security import client_kwargs
from streams.trace_context import extract, new_trace
from streams.tracing import outgoing

if TYPE_CHECKING:
    from streams.app import Line

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)

#: Records applied per loop: bounds the time one loop holds the event loop (decoding).
MAX_RECORDS = 500
#: How long one poll waits for records.
POLL_MS = 500
#: Timeouts written per partition per check; the rest wait for the next check.
MAX_TIMEOUTS = 200
#: Wait before the watchdog starts again after losing the broker.
RESTART_S = 2.0
#: How long a record is looked for when a timeout needs it again.
FETCH_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class WatchdogMetrics:
    exceeded: Counter
    open: Gauge

    @classmethod
    def build(cls, registry: CollectorRegistry) -> WatchdogMetrics:
        return cls(
            exceeded=Counter(
                "assetline_deadline_exceeded",
                "Requests the watchdog ended as FAILED deadline_exceeded, by where they waited.",
                ["waiting"],
                registry=registry,
            ),
            open=Gauge(
                "assetline_watchdog_open_requests",
                "Open requests the deadline watchdog tracks on this worker's partitions.",
                registry=registry,
            ),
        )


@dataclass(frozen=True)
class _Partitions:
    """Partition *p* of every topic the watchdog reads for one ledger partition."""

    requests: TopicPartition
    review: TopicPartition
    completed: TopicPartition
    urgent: TopicPartition  # .requests.urgent: HIGH requests' own intake

    def __iter__(self) -> Iterator[TopicPartition]:
        return iter((self.requests, self.review, self.completed, self.urgent))

    def marked(self) -> tuple[TopicPartition, ...]:
        """Those read from committed marks (``.completed`` is read from its end)."""
        return (self.requests, self.review, self.urgent)


class Ledger(Protocol):
    """What the watchdog reads of the deliver ledger: the completion bytes of a request."""

    def get(self, key: bytes) -> bytes | None: ...


def install_watchdog(line: Line, ledger: Ledger) -> None:
    """Start the watchdog with the deliver stage, on the stage's own ledger."""
    decode = line.codecs.completed.decode

    def completed(request_id: str) -> int | None:
        return completed_attempt(ledger.get(request_id.encode("utf-8")), decode)

    watchdog = Watchdog(line, completed)

    @line.app.task  # type: ignore[untyped-decorator]
    async def deadline_watchdog() -> None:
        await watchdog.run()


class Watchdog:
    """One per deliver worker; see the module docstring."""

    def __init__(self, line: Line, completed: Callable[[str], int | None]) -> None:
        settings = line.settings
        self.line = line
        self.completed = completed
        self.names = line.topics.names
        self.policy = DeadlinePolicy(
            request_s=settings.request_deadline_s,
            slack_s=settings.deadline_slack_s,
            review_s=settings.review_deadline_s,
        )
        self.gatekeeper = Gatekeeper.from_settings(settings)
        self.metrics = WatchdogMetrics.build(line.registry)
        self.group = f"{settings.app_id}-watchdog"
        self.sets: dict[int, OpenSet] = {}
        #: end offsets seen at the previous check: a reader past them is caught up enough
        self._ends: dict[TopicPartition, int] = {}
        self._committed: dict[int, Marks] = {}

    def owned(self) -> set[int] | None:
        """Ledger partitions this worker owns; None while a rebalance (or recovery) runs."""
        app = self.line.app
        if getattr(app, "rebalancing", False):
            return None
        sources = {self.names.approved, self.names.rejected}
        return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic in sources}

    async def run(self) -> None:
        while True:
            try:
                await self._run()
            except KafkaError as exc:
                log.warning("deadline watchdog lost the broker (%s); restarting", exc)
            except Exception:  # a bug here must not stop the deliver stage
                log.exception("deadline watchdog crashed; restarting")
            await asyncio.sleep(RESTART_S)

    async def _run(self) -> None:
        settings = self.line.settings
        reader = AIOKafkaConsumer(
            **client_kwargs(settings),
            group_id=self.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        fetcher = AIOKafkaConsumer(
            **client_kwargs(settings), enable_auto_commit=False, auto_offset_reset="earliest"
        )
        await reader.start()
        await fetcher.start()
        self.sets = {}
        self._ends = {}
        self._committed = {}
        try:
            interval = self.line.settings.deadline_check_interval_s
            next_check = time.monotonic() + interval
            while True:
                wanted = self.owned()
                if wanted is None:  # the ledger may be half recovered: wait
                    await asyncio.sleep(POLL_MS / 1000)
                    continue
                if wanted != set(self.sets):
                    await self._reassign(reader, wanted)
                if not self.sets:
                    await asyncio.sleep(POLL_MS / 1000)
                    continue
                batch = await reader.getmany(timeout_ms=POLL_MS, max_records=MAX_RECORDS)
                for tp, records in batch.items():
                    await self._apply(tp, records)
                if time.monotonic() >= next_check:
                    await self._check(reader, fetcher)
                    next_check = time.monotonic() + interval
        finally:
            self.metrics.open.set(0)
            await fetcher.stop()
            await reader.stop()

    def _tps(self, partition: int) -> _Partitions:
        names = self.names
        return _Partitions(
            TopicPartition(names.requests, partition),
            TopicPartition(names.review, partition),
            TopicPartition(names.completed, partition),
            TopicPartition(names.requests_urgent, partition),
        )

    async def _reassign(self, reader: AIOKafkaConsumer, wanted: set[int]) -> None:
        """Follow ``wanted``: kept partitions where they were, new ones from their marks."""
        kept = set(self.sets) & wanted
        positions = {tp: await reader.position(tp) for p in kept for tp in self._tps(p)}
        reader.assign([tp for p in sorted(wanted) for tp in self._tps(p)])
        for tp, offset in positions.items():
            reader.seek(tp, offset)
        for partition in sorted(wanted - kept):
            tps = self._tps(partition)
            for tp in tps.marked():
                mark = await reader.committed(tp)
                if mark is None:
                    await reader.seek_to_beginning(tp)
                else:
                    reader.seek(tp, mark)
            await reader.seek_to_end(tps.completed)
            self.sets[partition] = OpenSet()
        for partition in set(self.sets) - wanted:
            del self.sets[partition]
            self._committed.pop(partition, None)
        log.info("deadline watchdog follows partitions %s", sorted(wanted))

    async def _apply(
        self, tp: TopicPartition, records: Sequence[ConsumerRecord[bytes, bytes]]
    ) -> None:
        open_set = self.sets.get(tp.partition)
        if open_set is None:
            return
        for record in records:
            if tp.topic == self.names.completed:
                self._on_completed(open_set, record)
            elif tp.topic == self.names.requests:
                await self._on_request(open_set, record, urgent=False)
            elif tp.topic == self.names.requests_urgent:
                await self._on_request(open_set, record, urgent=True)
            elif tp.topic == self.names.review:
                await self._on_review(open_set, record)

    def _on_completed(self, open_set: OpenSet, record: ConsumerRecord[bytes, bytes]) -> None:
        if record.key is None:
            return
        rid = record.key.decode("utf-8", "replace")
        attempt = completed_attempt(record.value, self.line.codecs.completed.decode)
        if attempt is not None:
            open_set.on_completed(rid, attempt)

    async def _on_request(
        self, open_set: OpenSet, record: ConsumerRecord[bytes, bytes], *, urgent: bool
    ) -> None:
        value = record.value or b""
        if len(value) > self.line.settings.max_request_bytes:
            return  # dead-lettered by generate as request.too_large: never completed
        headers = list(record.headers or ())
        request = await self._decode(self.line.codecs.request, value, headers)
        if request is None:
            return
        refusal = self.gatekeeper.authenticity(request, value, headers)
        if refusal is not None and not refusal.authentic:
            return  # dead-lettered, never completed: a timeout would take the real slot
        if self._done(request.request_id, request.attempt):
            return
        deadline = self.policy.for_request(request, record.timestamp)
        open_set.on_request(
            request.request_id, request.attempt, deadline, record.offset, urgent=urgent
        )

    async def _on_review(self, open_set: OpenSet, record: ConsumerRecord[bytes, bytes]) -> None:
        headers = list(record.headers or ())
        waiting = await self._decode(self.line.codecs.validated, record.value or b"", headers)
        if waiting is None:
            return
        request = waiting.raw.request
        if self._done(request.request_id, request.attempt):
            return
        deadline = self.policy.for_review(record.timestamp)
        open_set.on_review(request.request_id, request.attempt, deadline, record.offset)

    def _done(self, request_id: str, attempt: int) -> bool:
        done = self.completed(request_id)
        return done is not None and done >= attempt

    async def _decode(
        self, codec: AvroCodec[M], value: bytes, headers: Iterable[tuple[str, bytes]]
    ) -> M | None:
        """Like the stages: an unseen registry id is fetched once; what fails is skipped."""
        try:
            try:
                return codec.decode(value, headers)
            except UnknownSchemaIdError as exc:
                resolver = self.line.codecs.resolver
                if resolver is None:
                    raise
                await resolver.ensure_known(exc.schema_id)
                return codec.decode(value, headers)
        except CodecError:
            return None  # the stage that reads it dead-letters it; there is nothing to complete

    async def _check(self, reader: AIOKafkaConsumer, fetcher: AIOKafkaConsumer) -> None:
        """Time out what is due on caught-up partitions; commit the marks that moved."""
        ends = await reader.end_offsets(list(reader.assignment()))
        now = time.time()
        for partition, open_set in list(self.sets.items()):
            tps = self._tps(partition)
            positions = {tp: await reader.position(tp) for tp in tps.marked()}
            if caught_up(positions, ends, self._ends):
                for rid, entry in open_set.due(now, MAX_TIMEOUTS):
                    await self._time_out(fetcher, partition, open_set, rid, entry, now)
            marks = open_set.marks(
                positions[tps.requests], positions[tps.review], positions[tps.urgent]
            )
            if self._committed.get(partition) != marks:
                await reader.commit(
                    {tps.requests: marks.requests, tps.review: marks.review,
                     tps.urgent: marks.urgent}
                )  # fmt: skip
                self._committed[partition] = marks
        self._ends = dict(ends)
        self.metrics.open.set(sum(len(s) for s in self.sets.values()))

    async def _time_out(
        self,
        fetcher: AIOKafkaConsumer,
        partition: int,
        open_set: OpenSet,
        rid: str,
        entry: OpenRequest,
        now: float,
    ) -> None:
        if self._done(rid, entry.attempt):
            open_set.drop(rid)
            return
        codecs = self.line.codecs
        tps = self._tps(partition)
        ending: ValidatedAsset | None = None
        request: GenerationRequest | None = None
        record: ConsumerRecord[bytes, bytes] | None = None
        if entry.review_offset is not None:
            record = await _fetch(fetcher, tps.review, entry.review_offset)
            waiting = await self._decode_record(codecs.validated, record)
            if waiting is not None:
                request = waiting.raw.request
                ending = timeout_from_review(waiting, entry)
        elif entry.request_offset is not None:
            where = tps.urgent if entry.urgent else tps.requests
            record = await _fetch(fetcher, where, entry.request_offset)
            request = await self._decode_record(codecs.request, record)
            if request is not None:
                ending = timeout_from_request(request, entry)
        if ending is None or request is None:
            log.error("deadline watchdog: request %s is past its deadline but its record is "
                      "gone (retention?); it cannot be completed", rid)  # fmt: skip
            open_set.drop(rid)
            return
        topics = self.line.topics
        # The timeout belongs to the request's trace: a span of its own under the last record.
        trace = (extract(record.headers if record is not None else None) or new_trace()).child()
        sent = await topics.rejected.send(
            key=rid.encode("utf-8"),
            value=codecs.validated.encode(ending),
            headers=outgoing(context=trace),
        )
        # acknowledged: the deliver agent will complete it (or find it completed)
        await acknowledged(sent)
        alert = deadline_alert(request, entry, now)
        sent = await topics.alerts.send(
            key=alert.alert_id.encode("utf-8"),
            value=codecs.alert.encode(alert),
            headers=outgoing(context=trace),
        )
        await acknowledged(sent)
        open_set.mark_timed_out(rid)
        self.metrics.exceeded.labels("review" if entry.in_review else "line").inc()
        log.warning("deadline watchdog: %s", alert.message)

    async def _decode_record(
        self, codec: AvroCodec[M], record: ConsumerRecord[bytes, bytes] | None
    ) -> M | None:
        if record is None:
            return None
        return await self._decode(codec, record.value or b"", list(record.headers or ()))


async def _fetch(
    fetcher: AIOKafkaConsumer, tp: TopicPartition, offset: int
) -> ConsumerRecord[bytes, bytes] | None:
    """The record at ``offset`` of ``tp``, or None when it is gone (retention, compaction)."""
    fetcher.assign([tp])
    fetcher.seek(tp, offset)
    deadline = time.monotonic() + FETCH_TIMEOUT_S
    while time.monotonic() < deadline:
        batch: Any = await fetcher.getmany(tp, timeout_ms=500, max_records=1)
        for record in batch.get(tp, ()):
            return record if record.offset == offset else None
    return None
