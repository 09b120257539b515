"""Completion webhooks on a real broker, to a real local receiver that verifies signatures.

One receiver is down for its first two calls (then delivered, same webhook-id every time),
one is down for good (dead-lettered after the schedule), one answers 410 Gone (called once).
The schedule lives in Kafka retry topics, shortened here to 0.3 s and 0.6 s.

A 410 is remembered in the compacted ``.webhooks.disabled`` topic: a restarted worker does not
call the endpoint again until an operator runs ``assetline webhooks enable``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.partitioner import DefaultPartitioner
from click.testing import CliRunner, Result
from prometheus_client import CollectorRegistry, Counter
from pydantic import SecretStr
from standardwebhooks import Webhook

from agents.notify.agent import Notifier
from agents.notify.disabled import decode_record, url_sha256
from assetline.cli import cli
from assetline.client import LineClient, await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, Constraints, GenerationRequest
from streams.codecs import Codecs
from streams.dead_letters import header_map
from streams.kafka import open_topic_reader, read_to_end
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs
from tests.integration.helpers import read_topic, submit_requests, worker_metric
from tests.support.provider_server import ProviderServer, Reply, provider_server

pytestmark = pytest.mark.integration

SECRET = "whsec_" + base64.b64encode(os.urandom(24)).decode()


@pytest.fixture
def receiver() -> Iterator[ProviderServer]:
    with provider_server() as server:
        yield server


def _request(run: str, name: str, url: str) -> GenerationRequest:
    return GenerationRequest(
        request_id=f"wh-{run}-{name}",
        idempotency_key=f"wh-{run}-{name}",
        tenant="acme",
        campaign_id="hooks",
        kind=AssetKind.TEXT,
        prompt_template="Copy for ${p}",
        variables={"p": name},
        constraints=Constraints(max_chars=200),
        callback_url=url,
    )


def test_webhooks_are_signed_retried_from_kafka_and_dead_lettered(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    receiver: ProviderServer,
) -> None:
    receiver.script("POST", "/hooks/flaky", [Reply(status=503), Reply(status=503)])
    receiver.handle("POST", "/hooks/flaky", lambda body: Reply(status=204))
    receiver.handle("POST", "/hooks/down", lambda body: Reply(status=503))
    receiver.handle("POST", "/hooks/gone", lambda body: Reply(status=410))
    settings = line_settings.model_copy(
        update={
            "api_keys": {"webhooks": SecretStr(SECRET)},
            "webhook_allow": ("127.0.0.1",),
            "webhook_schedule_s": (0.0, 0.3, 0.6),
            "stages": ("generate", "validate", "deliver", "review", "notify"),
        }
    )
    run = uuid.uuid4().hex[:8]
    requests = [_request(run, n, f"{receiver.url}/hooks/{n}") for n in ("flaky", "down", "gone")]

    asyncio.run(submit_requests(settings, requests))
    worker = start_worker(settings)
    ids = [r.request_id for r in requests]
    done = asyncio.run(await_completions(settings, ids, timeout=90))
    assert set(done) == set(ids), worker.log_tail()

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if (
            len(receiver.requests_to("/hooks/flaky")) >= 3
            and len(receiver.requests_to("/hooks/down")) >= 3
        ):
            break
        time.sleep(0.2)
    time.sleep(1.0)  # a stray extra call would land now

    verifier = Webhook(SECRET)
    flaky = receiver.requests_to("/hooks/flaky")
    assert len(flaky) == 3, worker.log_tail()
    for seen in flaky:
        payload = verifier.verify(seen.body, dict(seen.headers))  # raises on a bad signature
        assert payload["data"]["request_id"] == ids[0]
        assert payload["type"] == "asset.completed"
        assert "location" in payload["data"]
    assert len({seen.headers["webhook-id"] for seen in flaky}) == 1  # one id, three attempts

    assert len(receiver.requests_to("/hooks/down")) == 3  # the whole schedule, then no more
    assert len(receiver.requests_to("/hooks/gone")) == 1  # 410: never called again

    names = TopicNames.with_prefix(settings.topic_prefix)
    dead = asyncio.run(read_topic(settings, names.deadletter, min_messages=1, timeout=10))
    reasons = [header_map(m.headers) for m in dead]  # type: ignore[attr-defined]
    assert [h["assetline.dlq.error.code"] for h in reasons] == ["webhook.http_status"]
    assert "/hooks/down" in reasons[0]["assetline.dlq.error.reason"]
    assert SECRET not in worker.log_tail(10_000)


def _wait(
    condition: Callable[[], bool], timeout: float, what: str, worker: WorkerProcess | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            log = f"\nworker log:\n{worker.log_tail(20_000)}" if worker is not None else ""
            raise AssertionError(f"timed out waiting for {what}{log}")
        time.sleep(0.2)


async def _notify_committed_everything(settings: Settings) -> bool:
    """The notify group committed past every job on ``.webhooks`` (so a restart skips them)."""
    return await _notify_committed(settings, TopicNames.with_prefix(settings.topic_prefix).webhooks)


async def _notify_committed(settings: Settings, topic: str) -> bool:
    """The notify group committed past every job on ``topic``."""
    ends = await _end_offsets(settings, topic)
    done = {tp: meta.offset for tp, meta in (await _notify_commits(settings, topic)).items()}
    return all(done.get(tp, 0) >= end for tp, end in ends.items())


async def _notify_commits(settings: Settings, topic: str) -> dict[TopicPartition, Any]:
    """What the notify group committed on ``topic``: offset and metadata per partition."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(f"{settings.app_id}-notify")
    finally:
        await admin.close()
    return {tp: meta for tp, meta in committed.items() if tp.topic == topic}


async def _end_offsets(settings: Settings, topic: str) -> dict[TopicPartition, int]:
    consumer = await open_topic_reader(settings.kafka_bootstrap, topic)
    try:
        ends: dict[TopicPartition, int] = await consumer.end_offsets(list(consumer.assignment()))
        return ends
    finally:
        await consumer.stop()


def _cli(settings: Settings, *args: str) -> Result:
    env = {
        "KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ASSETLINE_TOPIC_PREFIX": settings.topic_prefix,
    }
    result = CliRunner().invoke(cli, list(args), env=env)
    assert "Traceback" not in result.output, result.output
    return result


def test_410_disables_the_endpoint_across_restarts_until_enabled(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    receiver: ProviderServer,
) -> None:
    receiver.handle("POST", "/hooks/gone", lambda body: Reply(status=410))
    settings = line_settings.model_copy(
        update={
            "api_keys": {"webhooks": SecretStr(SECRET)},
            "webhook_allow": ("127.0.0.1",),
            "webhook_schedule_s": (0.0, 0.3),
            "stages": ("generate", "validate", "deliver", "review", "notify"),
        }
    )
    names = TopicNames.with_prefix(settings.topic_prefix)
    url = f"{receiver.url}/hooks/gone?token=t0k3n"  # the query must never be logged or stored
    run = uuid.uuid4().hex[:8]
    first, second, third = (_request(run, n, url) for n in ("first", "second", "third"))
    calls = "assetline_webhook_calls_total"
    known = "assetline_webhook_disabled_endpoints"

    async def submit(request: GenerationRequest) -> None:
        await ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings))
        async with LineClient(settings) as client:
            await client.submit([request])

    # 1. the receiver answers 410: called once, and the topic remembers it
    asyncio.run(submit(first))
    worker = start_worker(settings)
    assert asyncio.run(await_completions(settings, [first.request_id], timeout=90)), (
        worker.log_tail()
    )
    _wait(lambda: len(receiver.requests_to("/hooks/gone")) == 1, 30, "the first call")
    _wait(
        lambda: bool(asyncio.run(read_to_end(settings.kafka_bootstrap, names.webhooks_disabled))),
        30,
        "the disabled record",
    )
    (stored,) = asyncio.run(read_to_end(settings.kafka_bootstrap, names.webhooks_disabled))
    digest, entry = decode_record(stored.key, stored.value)
    assert digest == url_sha256(url)
    assert entry is not None
    assert entry.origin == receiver.url
    assert b"t0k3n" not in (stored.value or b"")
    _wait(
        lambda: asyncio.run(_notify_committed_everything(settings)), 30, "the job's commit"
    )  # else the new worker would see the first job again
    first_worker = worker
    worker.stop(timeout=30)

    # 2. a new worker, which only knows the 410 from the topic, does not call it again
    worker = start_worker(settings)
    asyncio.run(submit(second))
    assert asyncio.run(await_completions(settings, [second.request_id], timeout=90)), (
        worker.log_tail()
    )
    _wait(lambda: worker_metric(settings.web_port, calls, result="disabled") == 1, 60, "the skip")
    assert worker_metric(settings.web_port, known) == 1
    time.sleep(1.0)  # a stray call would land now
    assert len(receiver.requests_to("/hooks/gone")) == 1

    # 3. the operator lists it and enables it again; the running worker follows the tombstone
    listed = _cli(settings, "webhooks", "disabled")
    assert listed.exit_code == 0, listed.output
    assert [line for line in listed.stdout.splitlines() if digest in line]
    assert "t0k3n" not in listed.output
    enabled = _cli(settings, "webhooks", "enable", url)
    assert enabled.exit_code == 0, enabled.output
    assert _cli(settings, "webhooks", "enable", digest).exit_code == 1  # no longer disabled
    _wait(lambda: worker_metric(settings.web_port, known) == 0, 30, "the worker to follow")

    receiver.handle("POST", "/hooks/gone", lambda body: Reply(status=204))
    asyncio.run(submit(third))
    _wait(lambda: len(receiver.requests_to("/hooks/gone")) == 2, 90, "the call after enable")
    payload = Webhook(SECRET).verify(
        receiver.requests_to("/hooks/gone")[1].body,
        dict(receiver.requests_to("/hooks/gone")[1].headers),
    )
    assert payload["data"]["request_id"] == third.request_id
    assert worker_metric(settings.web_port, calls, result="delivered") == 1
    assert worker_metric(settings.web_port, calls, result="disabled") == 1
    assert "t0k3n" not in first_worker.log_tail(10_000) + worker.log_tail(10_000)


def test_a_worker_refuses_to_notify_without_the_disabled_topic(line_settings: Settings) -> None:
    """Without it a restart would call every endpoint that answered 410 again."""
    registry = CollectorRegistry()
    notifier = Notifier(
        line_settings, Codecs.load(), Counter("c", "", ["result"], registry=registry)
    )
    with pytest.raises(RuntimeError, match=r"\.webhooks\.disabled is missing"):
        asyncio.run(notifier._open_registry())


def _same_partition_id(run: str, like: str, partitions: int) -> str:
    """A request id whose records land on the same partition as ``like``'s (murmur2, as Kafka)."""
    target = DefaultPartitioner()(like.encode(), list(range(partitions)), [])
    for n in range(1000):
        candidate = f"wh-{run}-soon{n}"
        if DefaultPartitioner()(candidate.encode(), list(range(partitions)), []) == target:
            return candidate
    raise AssertionError("no request id for that partition")


class _Calls:
    """Answers one path from a list of replies (the last repeats) and notes when each call came."""

    def __init__(self, *replies: Reply) -> None:
        self.replies = replies
        self.at: list[float] = []
        self._lock = threading.Lock()

    def __call__(self, body: object) -> Reply:
        with self._lock:
            self.at.append(time.monotonic())
            return self.replies[min(len(self.at), len(self.replies)) - 1]

    def __len__(self) -> int:
        with self._lock:
            return len(self.at)


def test_a_retry_due_later_than_the_poll_interval_stalls_nothing_and_crashes_nothing(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    receiver: ProviderServer,
) -> None:
    """Issue 12: the retry consumers slept in their poll loop until a job was due.

    ``429`` with ``Retry-After`` longer than the max poll interval made the consumer leave its
    group (``CommitFailedError``, the worker exited, the job ran twice), and another tenant's
    retry due in a second waited behind it. Here the poll interval is 5 s, the slow receiver
    asks for 40 s, and the other job sits on the same retry topic and partition behind it.
    Then the worker is killed: the next one runs the job still waiting, on time, and not the
    one already delivered after it.
    """
    slow = _Calls(Reply(status=429, headers={"Retry-After": "40"}), Reply(status=204))
    soon = _Calls(Reply(status=503, delay_s=1.0), Reply(status=204))
    receiver.handle("POST", "/hooks/slow", slow)
    receiver.handle("POST", "/hooks/soon", soon)
    settings = line_settings.model_copy(
        update={
            "api_keys": {"webhooks": SecretStr(SECRET)},
            "webhook_allow": ("127.0.0.1",),
            "webhook_schedule_s": (0.0, 1.0, 60.0),  # 40 s and ~1 s both go to retry topic 1
            "webhook_max_poll_interval_s": 5.0,
            "stages": ("generate", "validate", "deliver", "review", "notify"),
        }
    )
    names = TopicNames.with_prefix(settings.topic_prefix)
    run = uuid.uuid4().hex[:8]
    first = _request(run, "slow", f"{receiver.url}/hooks/slow")
    second = _request(run, "soon", f"{receiver.url}/hooks/soon")
    other_id = _same_partition_id(run, first.request_id, settings.topic_partitions)
    second = second.model_copy(update={"request_id": other_id, "idempotency_key": other_id})
    retry_topic = names.webhook_retry(1)

    worker = start_worker(settings)
    asyncio.run(submit_requests(settings, [first]))
    try:
        _wait(lambda: len(slow) == 1, 90, "the slow receiver's first call", worker)
    except AssertionError as exc:
        seen = {
            topic: len(asyncio.run(read_to_end(settings.kafka_bootstrap, topic)))
            for topic in (names.requests, names.raw, names.approved, names.completed)
        }
        seen[names.webhooks] = len(
            asyncio.run(read_to_end(settings.kafka_bootstrap, names.webhooks))
        )
        commits = asyncio.run(_notify_commits(settings, names.webhooks))
        raise AssertionError(f"records per topic {seen}, notify commits {commits}\n{exc}") from None
    asyncio.run(submit_requests(settings, [second]))  # so its retry is written behind
    _wait(lambda: len(soon) == 2, 60, "the second receiver's retry", worker)
    assert len(slow) == 1, "the soon job had to wait for the slow one"
    assert soon.at[1] - soon.at[0] < 8, soon.at  # ~1 s of 503 and ~1 s of schedule

    # committed at the waiting job, naming the delivered one after it as done
    _wait(
        lambda: any(
            meta.metadata.startswith("done:")
            for meta in asyncio.run(_notify_commits(settings, retry_topic)).values()
        ),
        30,
        "the commit naming the finished job",
    )
    time.sleep(6.0)  # longer than the 5 s poll interval: a sleeping consumer left its group
    assert worker.alive(), worker.log_tail()
    log = worker.log_tail(10_000)
    for sign in ("CommitFailedError", "Traceback", "crashed"):
        assert sign not in log, log
    worker.kill()

    worker = start_worker(settings)
    _wait(lambda: len(slow) == 2, 90, "the slow receiver's retry, by the next worker", worker)
    assert slow.at[1] - slow.at[0] >= 39, slow.at  # Retry-After honoured (within the schedule)
    _wait(lambda: asyncio.run(_notify_committed(settings, retry_topic)), 30, "the retries' commit")
    time.sleep(2.0)  # a stray second call would land now
    assert (len(slow), len(soon)) == (2, 2)  # nothing ran twice across the crash
    assert worker.alive(), worker.log_tail()
    dead = asyncio.run(read_to_end(settings.kafka_bootstrap, names.deadletter))
    assert dead == []
