"""Dead letters on a real broker, as an operator meets them: listed with their keys, one
inspected with its secrets masked, the chosen ones re-driven to their source and completed once.

A worker dead-letters a poison message itself (with an ``Authorization`` header a careless
producer sent); two valid requests are parked by hand as a stage that crashed on them would.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from click.testing import CliRunner, Result

from assetline.cli import cli
from assetline.client import LineClient
from assetline.dead_letter_view import DeadLetterView, Group, Position, groups
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, Constraints, GenerationRequest
from streams.codecs import Codecs
from streams.dead_letters import deadletter_headers
from streams.kafka import read_to_end
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs

pytestmark = pytest.mark.integration

StartWorker = Callable[[Settings], WorkerProcess]
CODECS = Codecs.load()
TOKEN = "Bearer tok-0123456789abcdef"


def _request(request_id: str) -> GenerationRequest:
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


def _cli(settings: Settings, *args: str) -> Result:
    env = {
        "KAFKA_BOOTSTRAP": settings.kafka_bootstrap,
        "ASSETLINE_TOPIC_PREFIX": settings.topic_prefix,
        "ASSETLINE_APP_ID": settings.app_id,
    }
    result = CliRunner().invoke(cli, list(args), env=env)
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 0, result.output
    return result


async def _poison_and_park(settings: Settings, parked: list[GenerationRequest]) -> None:
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


def _completions(settings: Settings) -> dict[str, list[int]]:
    names = TopicNames.with_prefix(settings.topic_prefix)
    out: dict[str, list[int]] = {}
    for record in asyncio.run(read_to_end(settings.kafka_bootstrap, names.completed)):
        done = CODECS.completed.decode(record.value or b"")
        out.setdefault(done.request_id, []).append(done.attempt)
    return out


def _wait_completions(
    settings: Settings, want: dict[str, list[int]], worker: WorkerProcess, timeout: float = 60
) -> dict[str, list[int]]:
    deadline = time.monotonic() + timeout
    while True:
        seen = _completions(settings)
        if all(seen.get(rid) == attempts for rid, attempts in want.items()):
            return seen
        assert time.monotonic() < deadline, (
            f"completions {seen}, wanted {want}\n{worker.log_tail()}"
        )
        time.sleep(0.5)


async def _lag(settings: Settings) -> int:
    """Records of the stage topics the worker's group has not committed yet."""
    names = TopicNames.with_prefix(settings.topic_prefix)
    topics = (names.requests, names.raw, names.approved, names.rejected)
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(settings.app_id)
        tps = [TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()]
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
        await admin.close()
    return sum(end - (committed[tp].offset if tp in committed else 0) for tp, end in ends.items())


def _wait_idle(settings: Settings, worker: WorkerProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    quiet = 0
    while quiet < 2:
        quiet = quiet + 1 if asyncio.run(_lag(settings)) == 0 else 0
        assert time.monotonic() < deadline, f"worker still lagging\n{worker.log_tail()}"
        time.sleep(1.0)


def test_dead_letters_listed_with_keys_inspected_and_chosen_ones_redriven_once(
    line_settings: Settings, start_worker: StartWorker
) -> None:
    names = TopicNames.with_prefix(line_settings.topic_prefix)
    asyncio.run(ensure_topics(line_settings.kafka_bootstrap, line_topic_specs(line_settings)))
    worker = start_worker(line_settings)
    first, second = _request("dlv-0"), _request("dlv-1")
    asyncio.run(_poison_and_park(line_settings, [first, second]))
    view = DeadLetterView(line_settings)
    deadline = time.monotonic() + 40
    while len(letters := asyncio.run(view.read())) < 3:
        assert time.monotonic() < deadline, worker.log_tail()
        time.sleep(0.5)

    # Listed with their keys, the attempt inside when the value decodes, and counted.
    rows = {row.key: row for row in view.rows(letters)}
    assert set(rows) == {"bad-1", "dlv-0", "dlv-1"}
    poison = rows["bad-1"]
    assert (poison.stage, poison.code, poison.attempt) == ("generate", "codec.malformed", None)
    assert poison.source.startswith(f"{names.requests}/")
    assert (rows["dlv-0"].request_id, rows["dlv-0"].attempt) == ("dlv-0", 1)
    assert view.rows(letters, codes=["codec.malformed"]) == [poison]
    assert Group("generate", "generate.crashed", 2) in groups(view.rows(letters))

    # One inspected: the producer's token is masked, the value is described, not dumped.
    letter = view.find(letters, poison.position)
    assert letter is not None
    detail = view.detail(letter)
    headers = {h.name: h for h in detail.headers}
    assert headers["authorization"].hidden
    assert "tok-0123456789abcdef" not in repr(detail)
    assert (detail.value.media_type, detail.value.preview) == ("text/plain", "definitely not avro")
    parked = view.detail(letters[[d.key for d in letters].index(b"dlv-0")])
    assert parked.value.record_type == "GenerationRequest"
    assert dict(parked.value.fields)["request_id"] == "dlv-0"

    # The CLI shows the same: keys in the list, counts, one letter with its token masked.
    listed = _cli(line_settings, "dlq", "list").output
    assert all(key in listed for key in ("bad-1", "dlv-0", "dlv-1"))
    counts = _cli(line_settings, "dlq", "list", "--counts").output.splitlines()
    assert counts[0].split() == ["count", "stage", "code"]
    assert counts[1].split() == ["2", "generate", "generate.crashed"]
    shown = _cli(line_settings, "dlq", "show", str(poison.position)).output
    assert "key       bad-1" in shown
    assert "authorization" in shown
    assert "tok-0123456789abcdef" not in shown
    assert "text: definitely not avro" in shown
    as_json = json.loads(
        _cli(line_settings, "dlq", "show", "--json", str(rows["dlv-0"].position)).output
    )
    assert as_json["row"]["key"] == "dlv-0"
    assert as_json["value"]["record_type"] == "GenerationRequest"

    # Re-drive only dlv-0 (and a position that holds nothing): it completes as attempt 1001.
    result = asyncio.run(view.redrive(letters, [rows["dlv-0"].position, Position(9, 9)]))
    assert result.sent == 1
    assert result.missing == (Position(9, 9),)
    _wait_completions(line_settings, {"dlv-0": [1001]}, worker)
    assert "dlv-1" not in _completions(line_settings)

    # Then dlv-0 again with dlv-1, from the CLI by PARTITION@OFFSET: still one completion each.
    at = [
        f"{row.position.partition}@{row.position.offset}" for row in (rows["dlv-0"], rows["dlv-1"])
    ]
    offsets = ["--offset", at[0], "--offset", at[1], "--offset", "9@9"]
    again = _cli(line_settings, "dlq", "replay", "--to-source", *offsets)
    assert "re-drove 2 dead letter(s), skipped 0" in again.output
    assert "9@9 skipped: no dead letter at that position" in again.output
    assert f"-> {names.requests} request dlv-0 attempt 1001" in again.output
    _wait_completions(line_settings, {"dlv-0": [1001], "dlv-1": [1001]}, worker)
    _wait_idle(line_settings, worker)
    done = _completions(line_settings)
    assert (done["dlv-0"], done["dlv-1"]) == ([1001], [1001])
    assert "bad-1" not in done
