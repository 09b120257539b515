"""Replay and dead-letter re-drive on a real broker: new attempts complete once, twice is a no-op.

The CLI is driven in-process (CliRunner) with the line's settings in the environment, so these
tests cover range resolution, rewriting, the batched producer and the ledger together.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from click.testing import CliRunner, Result

from assetline.cli import cli
from assetline.client import LineClient
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, Constraints, GenerationRequest
from streams.codecs import Codecs
from streams.dead_letters import deadletter_headers, header_map
from streams.kafka import read_to_end
from streams.settings import Settings
from streams.topics import TopicNames, TopicSpec, ensure_topics, line_topic_specs

pytestmark = pytest.mark.integration

StartWorker = Callable[[Settings], WorkerProcess]
CODECS = Codecs.load()


def _requests(run: str, count: int) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            request_id=f"{run}-{i}",
            idempotency_key=f"{run}-{i}",
            tenant="acme",
            campaign_id="replay",
            kind=AssetKind.TEXT,
            prompt_template="Headline for ${persona}",
            variables={"persona": f"p{i}"},
            constraints=Constraints(max_chars=120),
        )
        for i in range(count)
    ]


def _cli(settings: Settings, *args: str) -> Result:
    env = {
        "KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ASSETLINE_TOPIC_PREFIX": settings.topic_prefix,
        "ASSETLINE_APP_ID": settings.app_id,
    }
    result = CliRunner().invoke(cli, list(args), env=env)
    assert "Traceback" not in result.output, result.output
    return result


async def _submit(settings: Settings, requests: list[GenerationRequest]) -> None:
    async with LineClient(settings) as client:
        await client.submit(requests)


def _completions(settings: Settings) -> dict[str, list[int]]:
    """Attempts completed per request id, in topic order."""
    names = TopicNames.with_prefix(settings.topic_prefix)
    records = asyncio.run(read_to_end(settings.kafka_bootstrap, names.completed))
    out: dict[str, list[int]] = {}
    for record in records:
        done = CODECS.completed.decode(record.value or b"")
        out.setdefault(done.request_id, []).append(done.attempt)
    return out


def _wait_completions(
    settings: Settings, want: dict[str, list[int]], worker: WorkerProcess, timeout: float = 40
) -> dict[str, list[int]]:
    deadline = time.monotonic() + timeout
    while True:
        seen = _completions(settings)
        if all(sorted(seen.get(rid, [])) == sorted(a) for rid, a in want.items()):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"completions {seen}, wanted {want}\n{worker.log_tail()}")
        time.sleep(0.5)


async def _lag(settings: Settings) -> int:
    """Records of the line topics the worker's group has not committed yet."""
    names = TopicNames.with_prefix(settings.topic_prefix)
    topics = (names.requests, names.raw, names.approved, names.rejected)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.app_id)
        tps = [
            TopicPartition(t, p) for t in topics for p in sorted(await producer.partitions_for(t))
        ]
    finally:
        await producer.stop()
        await admin.close()
    records = await _ends(settings, tps)
    return sum(end - (committed[tp].offset if tp in committed else 0) for tp, end in records)


async def _ends(settings: Settings, tps: list[TopicPartition]) -> list[tuple[TopicPartition, int]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    return list(ends.items())


def _wait_idle(settings: Settings, worker: WorkerProcess, timeout: float = 40) -> None:
    """Until the worker has committed everything on requests/raw/approved/rejected, twice."""
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 2:
        quiet = quiet + 1 if asyncio.run(_lag(settings)) == 0 else 0
        if time.monotonic() > deadline:
            raise AssertionError(f"worker still lagging\n{worker.log_tail()}")
        time.sleep(1.0)


def _iso_now() -> str:
    time.sleep(0.02)  # records before are strictly older, records after strictly newer
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    time.sleep(0.02)
    return now


def test_replaying_requests_completes_each_once_as_a_new_attempt_and_twice_is_a_no_op(
    line_settings: Settings, start_worker: StartWorker
) -> None:
    asyncio.run(ensure_topics(line_settings.kafka_bootstrap, line_topic_specs(line_settings)))
    requests = _requests("a", 3)
    asyncio.run(_submit(line_settings, requests))
    worker = start_worker(line_settings)
    ids = [r.request_id for r in requests]
    _wait_completions(line_settings, {rid: [1] for rid in ids}, worker)
    until = _iso_now()  # the range: everything submitted so far, not what the replay adds

    args = ("replay", "--topic", "requests", "--from", "0", "--to", until, "--into", "requests")
    first = _cli(line_settings, *args)
    assert first.exit_code == 0, first.output
    assert "replayed 3 of 3 record(s)" in first.output
    _wait_completions(line_settings, {rid: [1, 1001] for rid in ids}, worker)

    second = _cli(line_settings, *args)
    assert second.exit_code == 0, second.output
    assert "replayed 3 of 3 record(s)" in second.output  # written again ...
    _wait_idle(line_settings, worker)
    # ... but the ledger keeps one completion per (request, attempt).
    assert _completions(line_settings) == {rid: [1, 1001] for rid in ids}


def test_replay_by_iso_time_copies_only_the_later_records_and_skips_bad_ones(
    line_settings: Settings,
) -> None:
    bootstrap = line_settings.kafka_bootstrap
    names = TopicNames.with_prefix(line_settings.topic_prefix)
    scratch = f"{line_settings.topic_prefix}.scratch"
    asyncio.run(
        ensure_topics(bootstrap, [TopicSpec(names.requests, 3, 1), TopicSpec(scratch, 3, 1)])
    )
    asyncio.run(_submit(line_settings, _requests("early", 2)))
    since = _iso_now()
    later = _requests("late", 3)

    async def late() -> None:
        async with LineClient(line_settings) as client:
            await client.submit(later)
            await client.send_raw(names.requests, b"junk", b"not a request")

    asyncio.run(late())

    dry = _cli(
        line_settings,
        "replay",
        "--topic",
        "requests",
        "--from",
        since,
        "--into",
        scratch,
        "--dry-run",
    )
    assert dry.exit_code == 0, dry.output
    assert "would replay 3 of 4 record(s)" in dry.output
    assert "1 undecodable" in dry.output
    assert dry.output.splitlines()[0].split()[:3] == ["partition", "from", "to"]

    done = _cli(line_settings, "replay", "--topic", "requests", "--from", since, "--into", scratch)
    assert done.exit_code == 0, done.output
    copied = asyncio.run(read_to_end(bootstrap, scratch))
    assert len(copied) == 3  # the dry run wrote nothing
    by_id = {CODECS.request.decode(m.value).request_id: m for m in copied}
    sources = {
        CODECS.request.decode(m.value).request_id: f"{m.topic}/{m.partition}/{m.offset}"
        for m in asyncio.run(read_to_end(bootstrap, names.requests))
        if m.key != b"junk"
    }
    assert sorted(by_id) == sorted(r.request_id for r in later)
    for rid, m in by_id.items():
        assert m.key == rid.encode()
        assert CODECS.request.decode(m.value).attempt == 1001
        headers = header_map(m.headers)
        assert headers["assetline.replay.source"] == sources[rid]
        assert headers["assetline.replay.generation"] == "1"
        assert headers["assetline.replay.id"]

    unknown = _cli(line_settings, "replay", "--topic", "paintings", "--from", "0", "--into", "raw")
    assert unknown.exit_code == 1
    assert "unknown topic 'paintings'" in unknown.output
    itself = _cli(line_settings, "replay", "--topic", "requests", "--from", "0")
    assert itself.exit_code == 1
    assert "--into requests" in itself.output


def test_dlq_list_shows_the_poison_and_redrive_completes_a_fixed_message_once(
    line_settings: Settings, start_worker: StartWorker
) -> None:
    bootstrap = line_settings.kafka_bootstrap
    names = TopicNames.with_prefix(line_settings.topic_prefix)
    asyncio.run(ensure_topics(bootstrap, line_topic_specs(line_settings)))
    worker = start_worker(line_settings)
    (fixed,) = _requests("dlq", 1)

    async def poison_and_park() -> None:
        async with LineClient(line_settings) as client:
            await client.send_raw(names.requests, b"bad-1", b"definitely not avro")
        # A valid request a stage once failed on (say, a provider bug since fixed).
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            headers = deadletter_headers(
                stage="generate",
                code="generate.crashed",
                reason="RuntimeError: provider bug",
                topic=names.requests,
                partition=0,
                offset=0,
            )
            await producer.send_and_wait(
                names.deadletter,
                key=fixed.request_id.encode(),
                value=CODECS.request.encode(fixed),
                headers=headers,
            )
        finally:
            await producer.stop()

    asyncio.run(poison_and_park())
    deadline = time.monotonic() + 40
    while len(asyncio.run(read_to_end(bootstrap, names.deadletter))) < 2:
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.5)

    listed = _cli(line_settings, "dlq", "list", "--code", "codec.malformed")
    assert listed.exit_code == 0, listed.output
    (row,) = [line for line in listed.output.splitlines() if "codec.malformed" in line]
    assert "generate" in row
    assert f"{names.requests}/" in row
    assert "generate.crashed" not in listed.output
    everything = _cli(line_settings, "dlq", "list", "--limit", "5")
    assert "generate.crashed" in everything.output

    redrive = _cli(line_settings, "dlq", "replay", "--to-source")
    assert redrive.exit_code == 0, redrive.output
    assert f"-> {names.requests} request {fixed.request_id} attempt 1001" in redrive.output
    assert "still not a valid record" in redrive.output  # the poison is skipped, not sent
    assert "re-drove 1 dead letter(s), skipped 1" in redrive.output
    _wait_completions(line_settings, {fixed.request_id: [1001]}, worker)

    again = _cli(line_settings, "dlq", "replay", "--code", "generate.crashed", "--to-source")
    assert again.exit_code == 0, again.output
    assert "re-drove 1 dead letter(s), skipped 0" in again.output
    _wait_idle(line_settings, worker)
    completed = _completions(line_settings)
    assert completed[fixed.request_id] == [1001]
    redriven = [
        m
        for m in asyncio.run(read_to_end(bootstrap, names.requests))
        if m.key == fixed.request_id.encode()
    ]
    assert len(redriven) == 2
    for m in redriven:
        headers = header_map(m.headers)
        assert not any(k.startswith("assetline.dlq.") for k in headers)
        assert headers["assetline.replay.source"].startswith(f"{names.deadletter}/")
        assert headers["assetline.replay.origin"] == f"{names.requests}/0/0"
