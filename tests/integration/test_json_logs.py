"""ASSETLINE_LOG_FORMAT=json on a real worker: every line of its output is one JSON object,
and the lines a stage writes about a request carry its request_id."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer

from assetline.client import await_completions
from assetline.dev.child_worker import WorkerProcess
from streams.kafka_security import client_kwargs
from streams.settings import Settings
from streams.topics import TopicNames
from tests.integration.helpers import mixed_requests, submit_requests

pytestmark = pytest.mark.integration


def test_a_json_worker_writes_one_object_per_line_with_request_ids(
    line_settings: Settings, start_worker: Callable[[Settings], WorkerProcess]
) -> None:
    settings = line_settings.model_copy(update={"log_format": "json", "log_level": "info"})
    requests = [e.request for e in mixed_requests(40)]
    asyncio.run(submit_requests(settings, requests))
    poison = f"poison-{uuid.uuid4().hex[:8]}"  # undecodable: dead-lettered with a warning
    asyncio.run(_send_raw(settings, poison, b"not an avro record"))
    worker = start_worker(settings)
    completions = asyncio.run(
        await_completions(settings, [r.request_id for r in requests], timeout=120)
    )
    assert len(completions) == len(requests), worker.log_tail()
    assert worker.stop() == 0
    lines = [line for line in worker.log_path.read_text().splitlines() if line.strip()]
    entries = []
    for line in lines:
        entry = json.loads(line)  # fails on any line that is not JSON
        assert {"time", "level", "logger", "message"} <= entry.keys(), line
        entries.append(entry)
    ids = {r.request_id for r in requests} | {poison}
    about = [e for e in entries if "request_id" in e]
    print(f"\n{len(entries)} lines, {len(about)} with a request_id; e.g. {about[:2]}")
    assert all(e["request_id"] in ids for e in about)
    dead_lettered = [e for e in about if "dead-lettering" in e["message"]]
    assert [e["request_id"] for e in dead_lettered] == [poison], about


async def _send_raw(settings: Settings, key: str, value: bytes) -> None:
    producer = AIOKafkaProducer(**client_kwargs(settings))
    await producer.start()
    try:
        topic = TopicNames.with_prefix(settings.topic_prefix).requests
        await producer.send_and_wait(topic, value, key=key.encode())
    finally:
        await producer.stop()
