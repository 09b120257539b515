"""The whole line on a real Kafka broker: counts, statuses, files, dead letters, crashes."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import unquote, urlparse

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from assetline.client import LineClient, await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetCompleted, Priority
from streams.codecs import Codecs
from streams.dead_letters import header_map
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs
from tests.integration.helpers import mixed_requests, read_topic, submit_requests

pytestmark = pytest.mark.integration

StartWorker = Callable[[Settings], WorkerProcess]


def _path_of(location: str) -> Path:
    return Path(unquote(urlparse(location).path))


def _assert_exactly_one(
    completions: dict[str, list[AssetCompleted]], expected_ids: list[str], worker: WorkerProcess
) -> None:
    missing = [i for i in expected_ids if i not in completions]
    assert not missing, f"{len(missing)} without completion; worker log:\n{worker.log_tail()}"
    doubled = {i: len(c) for i, c in completions.items() if len(c) != 1}
    assert not doubled, f"requests with more than one completion: {doubled}"


def test_mixed_requests_each_end_in_one_correct_completion(
    line_settings: Settings, start_worker: StartWorker
) -> None:
    expected = mixed_requests(200)
    requests = [e.request for e in expected]
    asyncio.run(submit_requests(line_settings, requests))
    worker = start_worker(line_settings)

    completions = asyncio.run(
        await_completions(line_settings, [r.request_id for r in requests], timeout=120)
    )
    _assert_exactly_one(completions, [r.request_id for r in requests], worker)
    # Nothing beyond the 200: read the whole topic and count distinct keys and events.
    names = TopicNames.with_prefix(line_settings.topic_prefix)
    events = asyncio.run(read_topic(line_settings, names.completed, min_messages=200, timeout=10))
    assert len(events) == 200

    for item in expected:
        (done,) = completions[item.request.request_id]
        assert done.status.value == item.status, (item.request, done.reasons)
        if item.status == "DELIVERED":
            assert done.location is not None
            assert done.sha256 is not None
            path = _path_of(done.location)
            assert path.is_relative_to(line_settings.delivery_dir.resolve())
            assert path.parts[-3:-1] == ("acme", "it")
            assert hashlib.sha256(path.read_bytes()).hexdigest() == done.sha256
            assert set(done.timings_ms) == {"generate", "validate", "deliver", "total"}
        else:
            assert done.location is None
            assert done.reasons, "a REJECTED or FAILED completion must say why"
    failed = [c[0] for c in completions.values() if c[0].status.value == "FAILED"]
    assert all("routing.unknown_provider" in c.reasons[0] for c in failed)
    rejected = [c[0] for c in completions.values() if c[0].status.value == "REJECTED"]
    assert all(any(r.startswith("json.schema") for r in c.reasons) for c in rejected)

    # The worker's /metrics agrees with what the topic says.
    metrics = _scrape(line_settings.web_port)
    for status in ("DELIVERED", "REJECTED", "FAILED"):
        want = sum(1 for e in expected if e.status == status)
        assert metrics[("assetline_completions_total", (("status", status),))] == want
    assert metrics[("assetline_stage_events_in_total", (("stage", "generate"),))] == 200
    assert metrics[("assetline_stage_seconds_count", (("stage", "deliver"),))] == 200


def test_high_requests_go_through_the_urgent_topic_to_one_correct_completion(
    line_settings: Settings, start_worker: StartWorker
) -> None:
    """The SDK writes HIGH requests to ``.requests.urgent``, the rest to ``.requests``; each
    ends in one correct completion (re-generations: tests/integration/test_scheduling.py)."""
    expected = mixed_requests(10)
    high = {expected[i].request.request_id for i in (5, 8)}  # a DELIVERED and a REJECTED one
    requests = [
        e.request.model_copy(update={"priority": Priority.HIGH})
        if e.request.request_id in high
        else e.request
        for e in expected
    ]
    asyncio.run(submit_requests(line_settings, requests))
    worker = start_worker(line_settings)
    ids = [r.request_id for r in requests]
    completions = asyncio.run(await_completions(line_settings, ids, timeout=120))
    _assert_exactly_one(completions, ids, worker)
    for item in expected:
        (done,) = completions[item.request.request_id]
        assert done.status.value == item.status, (item.request, done.reasons)

    names = TopicNames.with_prefix(line_settings.topic_prefix)
    codecs = Codecs.load()

    def attempts(topic: str, minimum: int) -> dict[str, set[int]]:
        found: dict[str, set[int]] = {}
        for m in asyncio.run(read_topic(line_settings, topic, min_messages=minimum, timeout=10)):
            request = codecs.request.decode(m.value)  # type: ignore[attr-defined]
            found.setdefault(request.request_id, set()).add(request.attempt)
        return found

    urgent = attempts(names.requests_urgent, 2)
    assert set(urgent) == high
    for rid in high:
        assert urgent[rid] == set(range(1, completions[rid][0].attempt + 1)), urgent
    assert not set(attempts(names.requests, 8)) & high


def _scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_poison_messages_go_to_deadletter_and_the_line_goes_on(
    line_settings: Settings, start_worker: StartWorker
) -> None:
    names = TopicNames.with_prefix(line_settings.topic_prefix)
    good = [e.request for e in mixed_requests(20) if e.status == "DELIVERED"]
    codecs = Codecs.load()
    valid = codecs.request.encode(good[0])
    poison = [
        (b"garbage", b"this is not avro"),
        (b"truncated", valid[:-7]),
        (b"unknown-schema", b"\xc3\x01" + b"\x00" * 8 + valid[10:]),
        (None, b""),
    ]

    async def submit_all() -> None:
        await ensure_topics(line_settings.kafka_bootstrap, line_topic_specs(line_settings))
        async with LineClient(line_settings) as client:
            await client.submit(good[: len(good) // 2])
            for key, value in poison:
                await client.send_raw(names.requests, key, value)
            await client.submit(good[len(good) // 2 :])
            # Later stages dead-letter what they cannot decode too.
            await client.send_raw(names.raw, b"bad-raw", b'{"not": "avro"}')
            await client.send_raw(names.approved, b"bad-approved", valid)  # wrong record type

    asyncio.run(submit_all())
    worker = start_worker(line_settings)
    completions = asyncio.run(
        await_completions(line_settings, [r.request_id for r in good], timeout=90)
    )
    _assert_exactly_one(completions, [r.request_id for r in good], worker)
    assert all(c[0].status.value == "DELIVERED" for c in completions.values())

    dead = asyncio.run(
        read_topic(line_settings, names.deadletter, min_messages=len(poison) + 2, timeout=30)
    )
    assert len(dead) == len(poison) + 2
    by_key = {m.key: header_map(m.headers) for m in dead}  # type: ignore[attr-defined]
    assert by_key[b"bad-raw"]["assetline.dlq.stage"] == "validate"
    assert by_key[b"bad-raw"]["assetline.dlq.error.code"] == "codec.malformed"
    assert by_key[b"bad-approved"]["assetline.dlq.stage"] == "deliver"
    assert by_key[b"bad-approved"]["assetline.dlq.error.code"] == "codec.unknown_schema"
    by_value = {
        m.value: header_map(m.headers)  # type: ignore[attr-defined]
        for m in dead
        if m.key not in (b"bad-raw", b"bad-approved")  # type: ignore[attr-defined]
    }
    for _key, value in poison:
        headers = by_value[value]
        assert headers["assetline.dlq.stage"] == "generate"
        assert headers["assetline.dlq.source.topic"] == names.requests
        assert int(headers["assetline.dlq.source.offset"]) >= 0
        assert headers["assetline.dlq.error.reason"]
    codes = sorted(h["assetline.dlq.error.code"] for h in by_value.values())
    assert codes == ["codec.malformed"] * 3 + ["codec.unknown_schema"]
    assert worker.alive(), "a poison message must not stop the worker"


def test_worker_killed_mid_stream_still_one_completion_per_request(
    line_settings: Settings, start_worker: StartWorker
) -> None:
    expected = mixed_requests(1500)
    requests = [e.request for e in expected]
    ids = [r.request_id for r in requests]
    asyncio.run(submit_requests(line_settings, requests))
    first = start_worker(line_settings)
    done_before_kill = asyncio.run(
        _wait_for_completions(line_settings, ids, minimum=40, timeout=90)
    )
    first.kill()
    assert 40 <= done_before_kill < len(ids), "the kill must land mid-stream"

    second = start_worker(line_settings)
    completions = asyncio.run(await_completions(line_settings, ids, timeout=150))
    _assert_exactly_one(completions, ids, second)
    for item in expected:
        done = completions[item.request.request_id][0]
        assert done.status.value == item.status, (item.request.request_id, done.reasons)


async def _wait_for_completions(
    settings: Settings, ids: list[str], *, minimum: int, timeout: float
) -> int:
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and len(seen) < minimum:
        seen = set(await await_completions(settings, ids, timeout=0.5))
    return len(seen)
