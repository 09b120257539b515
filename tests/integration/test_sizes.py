"""Hostile sizes on the real broker (issue 12 #2 and #4): nothing vanishes, nothing blows up.

Before the fix, requests of 999,600 and 1,010,000 bytes made the raw record too large for the
producer, the dead letter failed the same way, the agent crashed and the offsets were
committed past them: no completion, no dead letter. A JSON Schema asking for 9,000 strings of
100,000 characters made the worker build a 900 MB document (3.5 GB RSS).
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from assetline.client import await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, Constraints, GenerationRequest
from streams.codecs import Codecs
from streams.dead_letters import VALUE_PARKED, VALUE_SHA256, VALUE_SIZE, header_map, record_size
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs
from streams.trace_context import new_trace
from tests.integration.helpers import mixed_requests, read_topic, submit_requests

pytestmark = pytest.mark.integration

StartWorker = Callable[[Settings], WorkerProcess]
CODECS = Codecs.load()


def padded(request_id: str, size: int) -> tuple[GenerationRequest, bytes]:
    """A TEXT request whose encoded value is exactly ``size`` bytes."""
    pad = 0
    for _ in range(5):  # the pad's varint length can shift the total by a byte or two
        request = GenerationRequest(
            request_id=request_id,
            idempotency_key=request_id,
            tenant="acme",
            campaign_id="sizes",
            kind=AssetKind.TEXT,
            prompt_template="Copy for ${persona}",
            variables={"persona": "runner", "pad": "x" * pad},
        )
        value = CODECS.request.encode(request)
        if len(value) == size:
            return request, value
        pad += size - len(value)
    raise AssertionError(f"could not pad a request to {size} bytes")


def test_requests_near_one_megabyte_are_dead_lettered_with_a_code_and_nothing_is_lost(
    line_settings: Settings, start_worker: StartWorker
) -> None:
    names = TopicNames.with_prefix(line_settings.topic_prefix)
    good = [e.request for e in mixed_requests(20) if e.status == "DELIVERED"]
    # The two sizes from the issue, and the largest value the topic takes at all: its dead
    # letter (value + dead-letter headers) cannot fit, so the value is parked in the blob store.
    # The SDK sends each request with a traceparent header (streams/trace_context.py).
    sdk_headers = new_trace().headers()
    largest = line_settings.max_message_bytes - record_size(b"big-3", b"", sdk_headers) - 8
    big = [
        padded("big-1", 999_600),
        padded("big-2", 1_010_000),
        padded("big-3", largest),
    ]
    assert record_size(b"big-3", big[2][1], sdk_headers) <= line_settings.max_message_bytes
    requests = [*good[:3], *(request for request, _ in big), *good[3:]]
    asyncio.run(submit_requests(line_settings, requests))
    worker = start_worker(line_settings)

    ids = [r.request_id for r in good]
    completions = asyncio.run(await_completions(line_settings, ids, timeout=120))
    missing = [i for i in ids if i not in completions]
    assert not missing, f"{missing} without completion; worker log:\n{worker.log_tail()}"
    assert all(c[0].status.value == "DELIVERED" for c in completions.values())

    dead = asyncio.run(read_topic(line_settings, names.deadletter, min_messages=3, timeout=30))
    by_key = {m.key: m for m in dead}  # type: ignore[attr-defined]
    assert sorted(by_key) == [b"big-1", b"big-2", b"big-3"], worker.log_tail()
    for (_request, value), key in zip(big, (b"big-1", b"big-2", b"big-3"), strict=True):
        message = by_key[key]
        headers = header_map(message.headers)
        assert headers["assetline.dlq.error.code"] == "request.too_large"
        assert headers["assetline.dlq.stage"] == "generate"
        assert headers["assetline.dlq.source.topic"] == names.requests
        assert f"{len(value)} bytes" in headers["assetline.dlq.error.reason"]
        if key == b"big-3":
            assert message.value == b""
            assert headers[VALUE_SIZE] == str(len(value))
            assert headers[VALUE_SHA256] == hashlib.sha256(value).hexdigest()
            parked = Path(unquote(urlparse(headers[VALUE_PARKED]).path))
            assert parked.read_bytes() == value
        else:
            assert message.value == value  # the original, untouched
    no_completion = asyncio.run(
        await_completions(line_settings, ["big-1", "big-2", "big-3"], timeout=1)
    )
    assert no_completion == {}  # dead-lettered before generation: no half-served request
    assert worker.alive(), "an oversized request must not stop the worker"


def test_a_size_bomb_schema_ends_in_a_failed_completion_quickly(
    line_settings: Settings, start_worker: StartWorker
) -> None:
    bomb = {"type": "array", "minItems": 9000, "items": {"type": "string", "minLength": 100_000}}
    request = GenerationRequest(
        request_id="bomb",
        idempotency_key="bomb",
        tenant="acme",
        campaign_id="sizes",
        kind=AssetKind.JSON,
        prompt_template="Offer",
        constraints=Constraints(json_schema=json.dumps(bomb)),
    )
    good = [e.request for e in mixed_requests(10) if e.status == "DELIVERED"]
    asyncio.run(submit_requests(line_settings, [request, *good]))
    worker = start_worker(line_settings)
    started = time.monotonic()
    ids = ["bomb", *(r.request_id for r in good)]
    completions = asyncio.run(await_completions(line_settings, ids, timeout=90))
    assert set(completions) == set(ids), worker.log_tail()
    (done,) = completions["bomb"]
    assert done.status.value == "FAILED"
    assert any("asset.too_large" in reason for reason in done.reasons), done.reasons
    assert all(completions[r.request_id][0].status.value == "DELIVERED" for r in good)
    assert time.monotonic() - started < 60  # worker start included; was minutes and 3.5 GB
    assert worker.alive()


def test_an_event_whose_dead_letter_cannot_be_written_is_never_committed_past(
    line_settings: Settings, start_worker: StartWorker
) -> None:
    """The dead-letter topic refuses the dead letter (it takes 1,000 bytes at most): the
    stage retries, later events are processed, but the committed offset stays at the poison
    message until its dead letter is written; then it moves on. Before, the offset moved past
    it at once and the message was gone."""
    names = TopicNames.with_prefix(line_settings.topic_prefix)
    specs = line_topic_specs(line_settings)
    deadletter = next(s for s in specs if s.name == names.deadletter)
    small = {**deadletter.config, "max.message.bytes": "1000"}
    specs = [dataclasses.replace(s, config=small) if s is deadletter else s for s in specs]
    good = [e.request for e in mixed_requests(20) if e.status == "DELIVERED"][:6]
    poison = b"not avro " * 300  # 2,700 bytes: its dead letter is over the topic's limit

    async def produce() -> None:
        await ensure_topics(line_settings.kafka_bootstrap, specs)
        producer = AIOKafkaProducer(bootstrap_servers=line_settings.kafka_bootstrap)
        await producer.start()
        try:  # all on partition 0, poison at offset 3
            for key, value in [
                *((r.request_id.encode(), CODECS.request.encode(r)) for r in good[:3]),
                (b"poison", poison),
                *((r.request_id.encode(), CODECS.request.encode(r)) for r in good[3:]),
            ]:
                await producer.send_and_wait(names.requests, value, key=key, partition=0)
        finally:
            await producer.stop()

    asyncio.run(produce())
    worker = start_worker(line_settings)
    ids = [r.request_id for r in good]
    completions = asyncio.run(await_completions(line_settings, ids, timeout=120))
    assert set(completions) == set(ids), worker.log_tail()  # the events after it ran

    time.sleep(3 * line_settings.commit_interval_s + 1)
    held = asyncio.run(_committed(line_settings, names.requests))
    assert held == 3, f"committed {held}: must stop at the unwritten dead letter (offset 3)"
    assert asyncio.run(read_topic(line_settings, names.deadletter, min_messages=0, timeout=2)) == []
    assert "dead letter for" in worker.log_tail(200)

    asyncio.run(_alter(line_settings, names.deadletter, deadletter.config))  # room again
    dead = asyncio.run(read_topic(line_settings, names.deadletter, min_messages=1, timeout=60))
    assert [m.value for m in dead] == [poison]  # type: ignore[attr-defined]
    assert header_map(dead[0].headers)["assetline.dlq.error.code"] == "codec.malformed"  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    while (committed := asyncio.run(_committed(line_settings, names.requests))) != 7:
        assert time.monotonic() < deadline, f"committed offset stuck at {committed}"
        time.sleep(0.5)
    assert worker.alive()


async def _committed(settings: Settings, topic: str) -> int | None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(settings.app_id)
    finally:
        await admin.close()
    found = offsets.get(TopicPartition(topic, 0))
    return found.offset if found is not None and found.offset >= 0 else None


async def _alter(settings: Settings, topic: str, config: Mapping[str, str]) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, dict(config))])
    finally:
        await admin.close()
