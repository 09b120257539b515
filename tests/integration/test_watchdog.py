"""The deadline watchdog on a real broker: stuck requests end, finished ones are left alone.

A worker runs generate and deliver only, so every generated asset piles up on ``.raw`` and the
request is stuck for real. The test plays validate for two of them: it approves one (which
completes DELIVERED before its deadline) and sends one to review (which must wait for the long
review deadline, not the line default). The third stays stuck and must end FAILED
``deadline_exceeded`` with one alert, and so must a stuck HIGH one, which the SDK sent to
``.requests.urgent``; a forged one (dead-lettered by generate) is never ended;
a restart of the worker in between must not complete anything twice, and the marks it commits
must cover everything settled.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from assetline.client import await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.records import (
    Alert,
    AlertKind,
    AssetCompleted,
    AssetKind,
    CompletionStatus,
    Disposition,
    GenerationRequest,
    Priority,
    RawAsset,
    ValidatedAsset,
    ValidationReport,
    Verdict,
)
from streams.codecs import Codecs
from streams.settings import Settings
from streams.topics import TopicNames
from tests.integration.helpers import read_topic, submit_requests
from tests.support.assets import failed

pytestmark = pytest.mark.integration

CODECS = Codecs.load()
REQUEST_DEADLINE_S = 12.0
REVIEW_DEADLINE_S = 30.0


def _request(rid: str) -> GenerationRequest:
    return GenerationRequest(
        request_id=rid,
        idempotency_key=rid,
        tenant="acme",
        campaign_id="deadlines",
        kind=AssetKind.TEXT,
        prompt_template="Headline for ${p}",
        variables={"p": rid},
    )


async def _raw_of(settings: Settings, rid: str, timeout: float) -> RawAsset:
    """The generated asset of ``rid`` on ``.raw`` (generate ran, validate did not)."""
    deadline = time.monotonic() + timeout
    names = TopicNames.with_prefix(settings.topic_prefix)
    while time.monotonic() < deadline:
        for message in await read_topic(settings, names.raw, min_messages=1, timeout=2):
            raw = CODECS.raw.decode(message.value)  # type: ignore[attr-defined]
            if raw.request.request_id == rid:
                return raw
    raise AssertionError(f"{rid} was not generated in {timeout}s")


async def _send(settings: Settings, topic: str, rid: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, key=rid.encode(), value=value)
    finally:
        await producer.stop()


def _wait_for(settings: Settings, rid: str, timeout: float) -> AssetCompleted:
    seen = asyncio.run(await_completions(settings, [rid], timeout=timeout))
    assert rid in seen, f"{rid} did not complete in {timeout}s"
    return seen[rid][-1]


async def _marks(settings: Settings) -> dict[TopicPartition, tuple[int | None, int]]:
    """The watchdog's committed marks and the end offsets of ``.requests``,
    ``.requests.urgent`` and ``.review``."""
    names = TopicNames.with_prefix(settings.topic_prefix)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"{settings.app_id}-watchdog",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        tps = [
            TopicPartition(topic, p)
            for topic in (names.requests, names.requests_urgent, names.review)
            for p in range(settings.topic_partitions)
        ]
        ends = await consumer.end_offsets(tps)
        return {tp: (await consumer.committed(tp), ends[tp]) for tp in tps}
    finally:
        await consumer.stop()


def test_stuck_requests_end_failed_once_finished_and_reviewed_ones_are_left_alone(
    line_settings: Settings, start_worker: Callable[[Settings], WorkerProcess]
) -> None:
    settings = line_settings.model_copy(
        update={
            "stages": ("generate", "deliver"),  # no validate: .raw piles up
            "request_deadline_s": REQUEST_DEADLINE_S,
            "review_deadline_s": REVIEW_DEADLINE_S,
            "deadline_check_interval_s": 0.5,
        }
    )
    names = TopicNames.with_prefix(settings.topic_prefix)
    run = uuid.uuid4().hex[:8]
    normal, stuck, reviewed = f"ok-{run}", f"stuck-{run}", f"review-{run}"
    # HIGH: the SDK writes it to .requests.urgent, which the watchdog must follow too
    stuck_high = _request(f"stuck-high-{run}").model_copy(update={"priority": Priority.HIGH})
    # attempt 2 without the line's origin mark: dead-lettered by generate, never completed,
    # so never timed out either (a completion would take the real request's ledger slot)
    forged = _request(f"forged-{run}").model_copy(update={"attempt": 2})

    worker = start_worker(settings)
    # The normal request: generated, then approved as validate would, before its deadline.
    asyncio.run(submit_requests(settings, [_request(normal)]))
    raw = asyncio.run(_raw_of(settings, normal, timeout=60))
    approved = ValidatedAsset(
        raw=raw, report=ValidationReport(verdict=Verdict.PASS), disposition=Disposition.APPROVED
    )
    asyncio.run(_send(settings, names.approved, normal, CODECS.validated.encode(approved)))
    done = _wait_for(settings, normal, timeout=30)
    assert done.status is CompletionStatus.DELIVERED, worker.log_tail()

    # The stuck one, and one that waits for a person.
    submitted = time.time()
    asyncio.run(
        submit_requests(settings, [_request(stuck), _request(reviewed), forged, stuck_high])
    )
    raw = asyncio.run(_raw_of(settings, reviewed, timeout=30))
    waiting = ValidatedAsset(
        raw=raw,
        report=ValidationReport(verdict=Verdict.FAIL, checks=[failed("terms.prohibited")]),
        disposition=Disposition.REVIEW,
    )
    asyncio.run(_send(settings, names.review, reviewed, CODECS.validated.encode(waiting)))
    in_review = time.time()

    done = _wait_for(settings, stuck, timeout=REQUEST_DEADLINE_S + 30)
    assert time.time() - submitted >= REQUEST_DEADLINE_S
    assert done.status is CompletionStatus.FAILED, done
    assert done.reasons[0].startswith("deadline_exceeded: open past its deadline"), done.reasons
    assert done.attempt == 999  # closes the generation
    done = _wait_for(settings, stuck_high.request_id, timeout=10)
    assert done.status is CompletionStatus.FAILED, done
    assert done.reasons[0].startswith("deadline_exceeded: open past its deadline"), done.reasons
    # Past the line default too, but waiting for a person: not timed out.
    time.sleep(2)
    assert time.time() - submitted > REQUEST_DEADLINE_S + 1
    early = asyncio.run(await_completions(settings, [reviewed], timeout=2))
    assert reviewed not in early, early

    # A restart while the review is open: the worker starts from its marks.
    assert worker.stop(timeout=30) == 0, worker.log_tail()
    second = start_worker(settings)
    done = _wait_for(settings, reviewed, timeout=REVIEW_DEADLINE_S + 40)
    assert time.time() - in_review >= REVIEW_DEADLINE_S
    assert done.status is CompletionStatus.FAILED
    assert done.reasons[0].startswith("deadline_exceeded: waiting for a review decision")
    assert done.reasons[1].startswith("terms.prohibited")
    time.sleep(3)  # a few more checks: nothing is completed again

    ids = [normal, stuck, reviewed, stuck_high.request_id]
    everything = asyncio.run(await_completions(settings, ids, timeout=5))
    counts = {rid: len(events) for rid, events in everything.items()}
    assert counts == {rid: 1 for rid in ids}, second.log_tail(200)
    assert everything[normal][0].status is CompletionStatus.DELIVERED
    assert forged.request_id not in asyncio.run(
        await_completions(settings, [forged.request_id], timeout=2)
    )

    alerts = [
        CODECS.alert.decode(m.value)  # type: ignore[attr-defined]
        for m in asyncio.run(read_topic(settings, names.alerts, min_messages=2, timeout=5))
    ]
    deadline_alerts: list[Alert] = [a for a in alerts if a.kind is AlertKind.DEADLINE_EXCEEDED]
    assert sorted(a.request_id or "" for a in deadline_alerts) == sorted(
        [reviewed, stuck, stuck_high.request_id]
    )
    by_id = {a.request_id: a for a in deadline_alerts}
    assert by_id[reviewed].details["waiting"] == "review"
    assert by_id[stuck].details["waiting"] == "line"
    assert by_id[stuck_high.request_id].details["waiting"] == "line"

    # Everything is settled, so the committed marks are the ends: a restart reads nothing old.
    marks = asyncio.run(_marks(settings))
    assert all(mark == end for mark, end in marks.values()), marks
    assert sum(end for _, end in marks.values()) >= 6  # 5 requests + 1 review record
    urgent = {tp: end for tp, (_, end) in marks.items() if tp.topic == names.requests_urgent}
    assert sum(urgent.values()) == 1, marks  # the HIGH one went to its own intake
