"""Dead letters for tests: a poison message the worker parks itself, requests parked by hand as
a crashed stage would, and waits for what re-driving them completes (async, so a test that
also serves the console on its event loop can await them)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from assetline.client import LineClient
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, Constraints, GenerationRequest
from streams.codecs import Codecs
from streams.dead_letters import deadletter_headers
from streams.kafka import read_to_end
from streams.settings import Settings
from streams.topics import TopicNames

CODECS = Codecs.load()
#: What a careless producer sent along with its poison message; never to be shown.
TOKEN = "Bearer tok-0123456789abcdef"


def text_request(request_id: str) -> GenerationRequest:
    return GenerationRequest(
        request_id=request_id,
        idempotency_key=request_id,
        tenant="acme",
        campaign_id="dlq",
        kind=AssetKind.TEXT,
        prompt_template="Headline for ${persona}",
        variables={"persona": request_id},
        constraints=Constraints(max_chars=120),
    )


async def poison_and_park(settings: Settings, parked: Sequence[GenerationRequest]) -> None:
    """``bad-1`` (not Avro, with an Authorization header) onto ``.requests`` for the worker to
    dead-letter, and each of ``parked`` straight onto ``.deadletter`` as ``generate.crashed``."""
    names = TopicNames.with_prefix(settings.topic_prefix)
    async with LineClient(settings) as client:
        await client.send_raw(
            names.requests, b"bad-1", b"definitely not avro", [("authorization", TOKEN.encode())]
        )
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        for i, request in enumerate(parked):
            headers = deadletter_headers(
                stage="generate",
                code="generate.crashed",
                reason="RuntimeError: provider bug",
                topic=names.requests,
                partition=0,
                offset=100 + i,
            )
            await producer.send_and_wait(
                names.deadletter,
                key=request.request_id.encode(),
                value=CODECS.request.encode(request),
                headers=headers,
            )
    finally:
        await producer.stop()


async def completions(settings: Settings) -> dict[str, list[int]]:
    """Attempts completed per request id, in topic order."""
    names = TopicNames.with_prefix(settings.topic_prefix)
    out: dict[str, list[int]] = {}
    for record in await read_to_end(settings.kafka_bootstrap, names.completed):
        done = CODECS.completed.decode(record.value or b"")
        out.setdefault(done.request_id, []).append(done.attempt)
    return out


async def wait_completions(
    settings: Settings, want: dict[str, list[int]], worker: WorkerProcess, timeout: float = 60
) -> dict[str, list[int]]:
    deadline = time.monotonic() + timeout
    while True:
        seen = await completions(settings)
        if all(seen.get(rid) == attempts for rid, attempts in want.items()):
            return seen
        assert time.monotonic() < deadline, (
            f"completions {seen}, wanted {want}\n{worker.log_tail()}"
        )
        await asyncio.sleep(0.5)


async def lag(settings: Settings) -> int:
    """Records of the stage topics the worker's group has not committed yet."""
    names = TopicNames.with_prefix(settings.topic_prefix)
    topics = (names.requests, names.raw, names.approved, names.rejected)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await producer.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.app_id)
        tps = [
            TopicPartition(t, p) for t in topics for p in sorted(await producer.partitions_for(t))
        ]
        assert tps, "no partitions found"
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
        await producer.stop()
        await admin.close()
    return sum(end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items())


async def wait_idle(settings: Settings, worker: WorkerProcess, timeout: float = 60) -> None:
    """Until the worker has committed everything on its stage topics, twice in a row."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 2:
        quiet = quiet + 1 if await lag(settings) == 0 else 0
        assert time.monotonic() < deadline, f"worker still lagging\n{worker.log_tail()}"
        await asyncio.sleep(1.0)
