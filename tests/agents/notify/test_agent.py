"""The notify stage's 410 handling against a real local receiver, with Kafka replaced by a fake.

What is written to ``.webhooks.disabled``, what is read back from it, and that a disabled
endpoint is not called; the broker round trip is in ``tests/integration/test_webhooks.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest
from aiokafka import ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, RebalanceInProgressError
from prometheus_client import CollectorRegistry, Counter, Gauge
from pydantic import SecretStr

from agents.egress.pinning import WebhookClient
from agents.notify.agent import Notifier, _Lane
from agents.notify.disabled import (
    DisabledEndpoints,
    decode_record,
    encode_entry,
    tombstone_key,
    url_sha256,
)
from agents.notify.schedule import RetrySchedule
from schemas.records import WebhookJob
from streams.blobs import LocalBlobStore
from streams.codecs import CodecError, Codecs
from streams.dead_letters import VALUE_PARKED, header_map, record_size
from streams.settings import Settings
from tests.support.gated_blobs import GatedBlobStore, release_when_started
from tests.support.topic_reader import FakeReader
from tests.support.webhook_receiver import SECRET, Answer, Receiver, make_completion


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


class FakeProducer:
    def __init__(self) -> None:
        self.sent: list[Sent] = []

    async def send_and_wait(
        self, topic: str, *, key: bytes | None, value: bytes | None, headers: Any = None
    ) -> None:
        self.sent.append(Sent(topic, key, value, list(headers or ())))


def record(topic: str, key: bytes | None, value: bytes | None, offset: int = 0) -> Any:
    return ConsumerRecord(topic, 0, offset, 0, 0, key, value, None, 0, 0, ())


def metric(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


@dataclass
class Harness:
    notifier: Notifier
    producer: FakeProducer
    metrics: CollectorRegistry


@pytest.fixture
def harness() -> Harness:
    settings = Settings(
        kafka_bootstrap="127.0.0.1:1",
        topic_prefix="t",
        api_keys={"webhooks": SecretStr(SECRET)},
        webhook_allow=("127.0.0.1",),
        webhook_schedule_s=(0.0,),
    )  # type: ignore[call-arg]
    metrics = CollectorRegistry()
    calls = Counter("calls", "", ["result"], registry=metrics)
    gauge = Gauge("disabled", "", registry=metrics)
    notifier = Notifier(settings, Codecs.load(), calls, gauge)
    producer = FakeProducer()
    notifier._producer = producer  # type: ignore[assignment]
    return Harness(notifier, producer, metrics)


def job_record(notifier: Notifier, url: str, request_id: str) -> Any:
    job = WebhookJob(
        webhook_id=f"msg_{request_id}",
        url=url,
        due_at=datetime.now(UTC),
        completion=make_completion(request_id=request_id),
    )
    value = notifier.codecs.webhook_job.encode(job)
    return record(notifier.names.webhooks, request_id.encode(), value)


def handle(notifier: Notifier, *records: Any) -> None:
    async def go() -> None:
        async with WebhookClient() as client:
            notifier._client = client
            for item in records:
                await notifier._handle(item)

    asyncio.run(go())


def test_410_is_published_and_the_endpoint_is_skipped_until_a_tombstone(
    harness: Harness, receiver: Receiver
) -> None:
    notifier, producer, registry = harness.notifier, harness.producer, harness.metrics
    url = f"{receiver.url}/hooks/gone?token=t0k3n"
    receiver.script(Answer(410))

    handle(notifier, job_record(notifier, url, "r1"), job_record(notifier, url, "r2"))
    assert len(receiver.received) == 1  # r2 was not called
    (published,) = producer.sent
    assert published.topic == "t.webhooks.disabled"
    digest, entry = decode_record(published.key, published.value)
    assert digest == url_sha256(url)
    assert entry is not None
    assert entry.webhook_id == "msg_r1"
    assert entry.status == 410
    assert b"t0k3n" not in (published.value or b"")
    assert metric(registry, "calls_total", result="disabled") == 2  # the 410, then the skip
    assert metric(registry, "disabled") == 1

    # an operator re-enables it: the tombstone arrives through the followed topic
    tp = TopicPartition("t.webhooks.disabled", 0)
    notifier._apply({tp: [record(tp.topic, tombstone_key(url), None, 1)]})
    assert metric(registry, "disabled") == 0
    handle(notifier, job_record(notifier, url, "r3"))
    assert len(receiver.received) == 2
    assert metric(registry, "calls_total", result="delivered") == 1


def test_records_from_other_workers_disable_here_and_bad_ones_are_skipped(
    harness: Harness, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    notifier = harness.notifier
    url = f"{receiver.url}/hooks/elsewhere"
    other = Notifier(notifier.settings, notifier.codecs, notifier.calls)
    entry = other.disabled.disable(url, "msg_x")
    key, value = encode_entry(entry)
    tp = TopicPartition("t.webhooks.disabled", 0)
    with caplog.at_level(logging.WARNING):
        bad, good = record(tp.topic, b"garbage", b"{}", 0), record(tp.topic, key, value, 1)
        notifier._apply({tp: [bad, good]})
    assert "skipping t.webhooks.disabled[0]@0" in caplog.text
    assert url in notifier.disabled
    handle(notifier, job_record(notifier, url, "r1"))
    assert receiver.received == []


def test_dead_letter_reasons_and_logs_carry_no_query_string(
    harness: Harness, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    notifier, producer = harness.notifier, harness.producer
    url = f"{receiver.url}/hooks/bad?token=t0k3n"
    receiver.script(Answer(400), Answer(410))
    with caplog.at_level(logging.INFO):
        handle(notifier, job_record(notifier, url, "r1"), job_record(notifier, url, "r2"))
    dead, disabled = producer.sent
    reason = header_map(dead.headers)["assetline.dlq.error.reason"]
    assert "/hooks/bad" in reason
    assert "t0k3n" not in reason
    assert disabled.topic == "t.webhooks.disabled"
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("aiohttp")]
    assert any("disabled" in message for message in ours)
    assert not [message for message in ours if "t0k3n" in message]


def test_log_lines_about_a_job_carry_its_request_id(harness: Harness, receiver: Receiver) -> None:
    from streams.json_logs import request_id_var

    seen: list[tuple[str, str | None]] = []

    class Capture(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), request_id_var.get()))

    notifier = harness.notifier
    url = f"{receiver.url}/hooks/gone"
    receiver.script(Answer(410))
    capture = Capture(logging.INFO)
    logger = logging.getLogger("agents.notify")
    logger.addHandler(capture)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        handle(notifier, job_record(notifier, url, "req-410"))
    finally:
        logger.removeHandler(capture)
        logger.setLevel(level)
    assert seen, "the 410 is logged"
    assert {request_id for _, request_id in seen} == {"req-410"}, seen
    assert request_id_var.get() is None


def test_a_dead_letter_over_the_limit_is_fitted_like_every_stage_and_null_stays_null(
    harness: Harness, tmp_path: Path
) -> None:
    notifier, producer = harness.notifier, harness.producer
    notifier.blobs = LocalBlobStore(tmp_path)
    topic = notifier.names.webhooks
    huge = b"\x00" * (notifier.settings.max_message_bytes + 1)  # not a job: dead-lettered
    handle(notifier, record(topic, b"k", huge, 7), record(topic, b"k", None, 8))
    big, null = producer.sent
    assert big.topic == null.topic == "t.deadletter"
    read = header_map(big.headers)
    assert big.value == b""
    assert Path(unquote(urlparse(read[VALUE_PARKED]).path)).read_bytes() == huge
    assert read["assetline.dlq.stage"] == "notify"
    assert read["assetline.dlq.source.offset"] == "7"
    assert record_size(big.key, big.value, big.headers) <= notifier.settings.max_message_bytes
    assert null.value is None
    assert header_map(null.headers)["assetline.dlq.source.offset"] == "8"


def test_notify_parks_a_dead_letter_value_without_blocking_the_event_loop(
    harness: Harness, tmp_path: Path
) -> None:
    """The webhook lanes share the loop: parking on a slow (S3) store must not stall them."""
    notifier, producer = harness.notifier, harness.producer
    store = GatedBlobStore(tmp_path)
    notifier.blobs = store
    huge = b"\x00" * (notifier.settings.max_message_bytes + 1)

    async def go() -> None:
        big = record(notifier.names.webhooks, b"k", huge, 7)
        await asyncio.gather(notifier._handle(big), release_when_started(store))

    asyncio.run(go())
    assert store.steps == ["put started", "another coroutine ran", "put done"]
    (sent,) = producer.sent
    assert Path(unquote(urlparse(header_map(sent.headers)[VALUE_PARKED]).path)).read_bytes() == huge


def test_catch_up_applies_every_record_up_to_the_end_before_returning(harness: Harness) -> None:
    notifier = harness.notifier
    gone = [f"https://hooks.example/{n}?token=x" for n in range(3)]
    p0, p1 = TopicPartition("t.webhooks.disabled", 0), TopicPartition("t.webhooks.disabled", 1)
    entries = [encode_entry(notifier.disabled.disable(url, "m")) for url in gone]
    notifier.disabled = DisabledEndpoints()  # forget them: only the topic may tell
    topic = FakeReader(
        {
            p0: [
                record(p0.topic, *entries[0], 0),
                record(p0.topic, tombstone_key(gone[0]), None, 1),
            ],
            p1: [record(p1.topic, *entries[1], 0), record(p1.topic, *entries[2], 1)],
        }
    )
    asyncio.run(notifier._catch_up(topic))  # type: ignore[arg-type]
    assert [url in notifier.disabled for url in gone] == [False, True, True]
    assert metric(harness.metrics, "disabled") == 2


class FakeConsumer:
    """Enough of a group consumer for one notify lane: scripted batches, recorded commits."""

    def __init__(self, tp: TopicPartition, batches: list[list[Any]]) -> None:
        self.tp = tp
        self.batches = batches
        self.commits: list[dict[TopicPartition, int]] = []
        self.refuse: list[Exception] = []
        self._paused: set[TopicPartition] = set()
        self.seeks: list[tuple[TopicPartition, int]] = []
        self.fetched: list[Any] = []

    async def getmany(self, timeout_ms: int = 0, max_records: int | None = None) -> Any:
        if self.batches and self.tp not in self._paused:
            batch = self.batches.pop(0)
            self.fetched.extend(batch)
            return {self.tp: batch}
        await asyncio.sleep(min(timeout_ms, 50) / 1000)
        return {}

    def assignment(self) -> set[TopicPartition]:
        return {self.tp}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Like aiokafka: the records from ``offset`` on are fetched again."""
        self.seeks.append((tp, offset))
        self.batches.insert(0, [r for r in self.fetched if r.offset >= offset])

    def pause(self, *tps: TopicPartition) -> None:
        self._paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self._paused.difference_update(tps)

    def paused(self) -> set[TopicPartition]:
        return set(self._paused)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.refuse:
            raise self.refuse.pop(0)
        self.commits.append(dict(offsets))


def lane_for(harness: Harness, **settings: Any) -> _Lane:
    notifier = harness.notifier
    notifier.settings = notifier.settings.model_copy(update={"commit_interval_s": 0.01, **settings})
    return _Lane(notifier, notifier.names.webhooks, 8)


def due_record(notifier: Notifier, url: str, request_id: str, offset: int, in_s: float) -> Any:
    job = WebhookJob(
        webhook_id=f"msg_{request_id}",
        url=url,
        due_at=datetime.now(UTC) + timedelta(seconds=in_s),
        completion=make_completion(request_id=request_id),
    )
    value = notifier.codecs.webhook_job.encode(job)
    return ConsumerRecord(notifier.names.webhooks, 0, offset, 0, 0, request_id.encode(), value,
                          None, 0, 0, ())  # fmt: skip


async def poll_until(lane: _Lane, consumer: FakeConsumer, done: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        await lane._poll(consumer)  # type: ignore[arg-type]


def test_a_job_due_later_neither_blocks_due_jobs_nor_is_committed_past(
    harness: Harness, receiver: Receiver
) -> None:
    """Issue 12: the consumer slept on a job due in 330 s; a job due in 2 s waited behind it.

    Offsets 0 and 2 are due now, offset 1 in an hour: 0 and 2 are called at once, and the
    partition is committed up to 1 only, so a crash re-reads the waiting job instead of
    losing it.
    """
    notifier = harness.notifier
    notifier.schedule = RetrySchedule(delays=(0, 5, 7200))
    tp = TopicPartition(notifier.names.webhooks, 0)
    lane = lane_for(harness)
    records = [
        due_record(notifier, f"{receiver.url}/hooks/a", "r0", 0, 0),
        due_record(notifier, f"{receiver.url}/hooks/later", "r1", 1, 3600),
        due_record(notifier, f"{receiver.url}/hooks/b", "r2", 2, 0),
    ]
    consumer = FakeConsumer(tp, [records])

    async def go() -> None:
        async with WebhookClient() as client:
            notifier._client = client
            lane.consumer = consumer  # type: ignore[assignment]
            await lane.on_partitions_assigned([tp])
            started = time.monotonic()
            await poll_until(lane, consumer, lambda: {tp: (1, "done:1")} in consumer.commits)
            assert time.monotonic() - started < 5
            await lane.on_partitions_revoked([tp])  # the hour-long job is dropped, not run
            assert len(lane.waiting) == 0

    asyncio.run(go())
    assert sorted(seen.path for seen in receiver.received) == ["/hooks/a", "/hooks/b"]
    # never past the job still waiting; the one done after it is named for the next owner
    assert consumer.commits[-1] == {tp: (1, "done:1")}
    assert max(commit[tp][0] for commit in consumer.commits) == 1


def test_a_batch_fetched_before_the_assignment_listener_finished_is_read_again(
    harness: Harness, receiver: Receiver
) -> None:
    """aiokafka fetches while ``on_partitions_assigned`` still awaits the commit metadata.

    The lane dropped such a batch as "revoked", and the consumer's position had moved past it:
    the job was never called while that worker lived (seen as a flaky integration test: a
    webhook job sat on ``.webhooks`` for minutes). Now the partition is rewound instead.
    """
    notifier = harness.notifier
    tp = TopicPartition(notifier.names.webhooks, 0)
    lane = lane_for(harness)
    record = due_record(notifier, f"{receiver.url}/hooks/early", "r0", 0, 0)
    consumer = FakeConsumer(tp, [[record]])

    async def go() -> None:
        async with WebhookClient() as client:
            notifier._client = client
            lane.consumer = consumer  # type: ignore[assignment]
            await lane._poll(consumer)  # type: ignore[arg-type]  # listener not done yet
            assert consumer.seeks == [(tp, 0)]
            await lane.on_partitions_assigned([tp])
            await poll_until(lane, consumer, lambda: {tp: (1, "")} in consumer.commits)

    asyncio.run(go())
    assert [seen.path for seen in receiver.received] == ["/hooks/early"]


def test_no_job_waits_longer_than_the_schedule_allows(harness: Harness) -> None:
    """A ``due_at`` far beyond the schedule would hold its partition's commits back for ever."""
    notifier = harness.notifier
    notifier.schedule = RetrySchedule(delays=(0, 5, 60), jitter=0.2)
    lane = lane_for(harness)
    far = notifier._decode(due_record(notifier, "https://h.example/x", "r", 0, 86_400 * 365))
    soon = notifier._decode(due_record(notifier, "https://h.example/x", "r", 1, 30))
    now = time.time()
    assert not isinstance(far, CodecError)
    assert not isinstance(soon, CodecError)
    assert now + 71 < lane._due(far) < now + 73  # 60 s + 20 % jitter
    assert lane._due(soon) == pytest.approx(soon.due_at.timestamp())


def test_a_slow_receiver_holds_only_its_own_call_slots(
    harness: Harness, receiver: Receiver
) -> None:
    """Ten jobs to a receiver that answers in 3 s must not hold up another receiver's job."""
    notifier = harness.notifier
    tp = TopicPartition(notifier.names.webhooks, 0)
    lane = lane_for(harness, webhook_origin_concurrency=2)
    slow = Receiver().start()
    try:
        slow.script(*[Answer(204, delay_s=3.0)] * 10)
        records = [due_record(notifier, f"{slow.url}/hooks/slow", f"s{n}", n, 0) for n in range(10)]
        records.append(due_record(notifier, f"{receiver.url}/hooks/fast", "f", 10, 0))
        consumer = FakeConsumer(tp, [records])

        async def go() -> float:
            async with WebhookClient() as client:
                notifier._client = client
                lane.consumer = consumer  # type: ignore[assignment]
                await lane.on_partitions_assigned([tp])
                started = time.monotonic()
                await poll_until(lane, consumer, lambda: receiver.received)
                took = time.monotonic() - started
                assert len(slow.received) <= 2  # its origin's two slots, no more
                for item in list(lane.running):
                    assert item.task is not None
                    item.task.cancel()
                await asyncio.sleep(0)
                return took

        took = asyncio.run(go())
    finally:
        slow.stop()
    assert took < 2.5, took  # not behind the 3 s calls; 8 shared slots would all be taken


def test_a_commit_refused_after_a_rebalance_is_a_re_read_not_a_crash(
    harness: Harness, receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 12: ``CommitFailedError`` escaped the notify loop and the whole worker exited."""
    notifier = harness.notifier
    tp = TopicPartition(notifier.names.webhooks, 0)
    lane = lane_for(harness)
    consumer = FakeConsumer(tp, [[due_record(notifier, f"{receiver.url}/hooks/a", "r0", 0, 0)]])
    consumer.refuse = [CommitFailedError("rebalanced"), RebalanceInProgressError()]

    async def go() -> None:
        async with WebhookClient() as client:
            notifier._client = client
            lane.consumer = consumer  # type: ignore[assignment]
            await lane.on_partitions_assigned([tp])
            with caplog.at_level(logging.WARNING):
                await poll_until(lane, consumer, lambda: {tp: (1, "")} in consumer.commits)

    asyncio.run(go())
    refused = [
        r.getMessage() for r in caplog.records if "refused after a rebalance" in r.getMessage()
    ]
    assert len(refused) == 2  # one line each, and the lane went on
    assert "CommitFailedError" in refused[0]
    assert consumer.commits[-1] == {tp: (1, "")}  # committed once the group let it
    assert len(receiver.received) == 1  # the job itself ran once


def test_jobs_beyond_a_slow_receivers_backlog_are_written_back_uncalled(
    harness: Harness, receiver: Receiver
) -> None:
    """A burst for one slow receiver must not fill the consumer's buffer ahead of others' jobs.

    One call slot, so a backlog of 8: the 9th and later due jobs go back to a retry topic with
    the same attempt, due later, and their offsets count as finished.
    """
    settings = harness.notifier.settings.model_copy(
        update={"webhook_schedule_s": (0.0, 5.0, 300.0), "webhook_origin_concurrency": 1}
    )
    notifier = Notifier(settings, harness.notifier.codecs, harness.notifier.calls)
    notifier._producer = harness.producer  # type: ignore[assignment]
    harness.notifier = notifier
    tp = TopicPartition(notifier.names.webhooks, 0)
    lane = lane_for(harness)
    slow = Receiver().start()
    try:
        slow.script(*[Answer(204, delay_s=2.0)] * 20)
        records = [due_record(notifier, f"{slow.url}/hooks/slow", f"s{n}", n, 0) for n in range(12)]
        records.append(due_record(notifier, f"{receiver.url}/hooks/fast", "f", 12, 0))
        consumer = FakeConsumer(tp, [records])

        async def go() -> None:
            async with WebhookClient() as client:
                notifier._client = client
                lane.consumer = consumer  # type: ignore[assignment]
                await lane.on_partitions_assigned([tp])
                started = time.monotonic()
                await poll_until(lane, consumer, lambda: receiver.received)
                assert time.monotonic() - started < 1.5
                assert len(lane.running) == 8  # the slow receiver's backlog, nothing more
                for item in list(lane.running):
                    assert item.task is not None
                    item.task.cancel()
                await asyncio.sleep(0)

        asyncio.run(go())
    finally:
        slow.stop()
    deferred = [
        notifier.codecs.webhook_job.decode(sent.value or b"") for sent in harness.producer.sent
    ]
    assert {sent.topic for sent in harness.producer.sent} == {notifier.retry_topics[0]}
    assert sorted(job.completion.request_id for job in deferred) == ["s10", "s11", "s8", "s9"]
    assert {job.delivery_attempt for job in deferred} == {1}  # not a failed attempt
    assert all(job.due_at > datetime.now(UTC) + timedelta(seconds=4) for job in deferred)
    assert metric(harness.metrics, "calls_total", result="deferred") == 4
    assert len(slow.received) == 1
