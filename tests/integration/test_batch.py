"""A campaign with a day to spare goes through a batch API, in a real worker (issue 16 #5).

One worker, a real broker, and the local batch server playing an OpenAI-shaped provider (batch
API and synchronous chat). The campaign's requests carry a 24 h latency budget; the alias has a
batch rung at half the price, so the completions must say: batched, and half the cost.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from pydantic import SecretStr

from agents.inference.batch._tickets import decode_ticket
from assetline.client import LineClient, await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, CompletionStatus, GenerationRequest, ModelSpec
from streams.codecs import Codecs
from streams.kafka import read_to_end
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs
from tests.support.batch_server import INPUT_TOKENS, OUTPUT_TOKENS, BatchServer, batch_server

pytestmark = pytest.mark.integration

ROUTING = """
providers:
  oai: {{type: openai, base_url: "{url}/v1", api_key: oai}}
aliases:
  copy:
    chain:
      - {{provider: oai, model: gpt-4o-mini, version: gpt-4o-mini-2024-07-18, max_retries: 0,
          price: {{input_per_1k: 0.15, output_per_1k: 0.60}}}}
    batch: {{provider: oai, model: gpt-4o-mini, version: gpt-4o-mini-2024-07-18,
             window_s: 3600, max_size: 50, max_age_s: 1, poll_s: 0.2,
             price: {{input_per_1k: 0.075, output_per_1k: 0.30}}}}
default_alias: copy
"""
SYNC_COST = (INPUT_TOKENS * 0.15 + OUTPUT_TOKENS * 0.60) / 1000.0
COUNT = 30


@pytest.fixture
def server() -> Iterator[BatchServer]:
    with batch_server(text="Fast shoes for long runs.") as started:
        yield started


def _wait_ready(worker: WorkerProcess, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "Ready" in worker.log_tail(400):
            return
        time.sleep(0.2)
    raise AssertionError(f"worker not ready:\n{worker.log_tail()}")


def test_a_campaign_with_a_day_to_spare_is_batched_at_half_the_cost(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    server: BatchServer,
    tmp_path: Path,
) -> None:
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING.format(url=server.url))
    settings = line_settings.model_copy(
        update={"routing_file": routing, "api_keys": {"oai": SecretStr("sk-oai")}}
    )
    asyncio.run(ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings)))
    worker = start_worker(settings)
    _wait_ready(worker)

    run = uuid.uuid4().hex[:8]
    requests = [
        GenerationRequest(
            request_id=f"batch-{run}-{i:03d}",
            idempotency_key=f"batch-{run}-{i:03d}",
            tenant="acme",
            campaign_id=f"spring-{run}",
            kind=AssetKind.TEXT,
            prompt_template=f"Headline for product {i}",
            model=ModelSpec(alias="copy"),
            latency_budget_ms=86_400_000,
        )
        for i in range(COUNT)
    ]

    async def submit() -> None:
        async with LineClient(settings) as client:
            await client.submit(requests)

    asyncio.run(submit())
    ids = [r.request_id for r in requests]
    completions = asyncio.run(await_completions(settings, ids, timeout=120))
    assert len(completions) == COUNT, worker.log_tail()
    finals = [versions[0] for versions in completions.values()]
    assert all(c.status is CompletionStatus.DELIVERED for c in finals), worker.log_tail()
    batched = [c for c in finals if c.attempts and c.attempts[-1].batched]
    assert len(batched) >= 0.95 * COUNT
    cost = sum(c.cost for c in finals)
    assert cost <= 0.55 * SYNC_COST * COUNT
    assert cost == pytest.approx(0.5 * SYNC_COST * COUNT)
    assert server.sync_calls == 0
    assert sum(server.batch_sizes) == COUNT


def test_requests_waiting_for_a_batch_leave_room_for_other_tenants(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    server: BatchServer,
    tmp_path: Path,
) -> None:
    server.hold = True  # the batches never end while the test looks
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING.format(url=server.url))
    settings = line_settings.model_copy(
        update={
            "routing_file": routing,
            "api_keys": {"oai": SecretStr("sk-oai")},
            "generate_concurrency": 2,
        }
    )
    asyncio.run(ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings)))
    worker = start_worker(settings)
    _wait_ready(worker)
    run = uuid.uuid4().hex[:8]

    def copy(i: int, tenant: str, budget_ms: int | None) -> GenerationRequest:
        return GenerationRequest(
            request_id=f"slot-{run}-{i:03d}",
            idempotency_key=f"slot-{run}-{i:03d}",
            tenant=tenant,
            campaign_id=f"c-{run}",
            kind=AssetKind.TEXT,
            prompt_template=f"Headline {i}",
            model=ModelSpec(alias="copy"),
            latency_budget_ms=budget_ms,
        )

    campaign = [copy(i, "patient", 86_400_000) for i in range(4)]
    urgent = copy(99, "urgent", None)

    async def submit(requests: list[GenerationRequest]) -> None:
        async with LineClient(settings) as client:
            await client.submit(requests)

    try:
        asyncio.run(submit(campaign))
        deadline = time.monotonic() + 30
        while not server.polls and time.monotonic() < deadline:
            time.sleep(0.1)
        assert server.polls, worker.log_tail()
        asyncio.run(submit([urgent]))
        done = asyncio.run(await_completions(settings, [urgent.request_id], timeout=20))
        assert urgent.request_id in done
    finally:
        server.release()


@pytest.mark.parametrize("end", ["kill", "stop", "kill-before-tickets"])
def test_a_worker_killed_while_its_batch_runs_pays_nothing_twice(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    server: BatchServer,
    tmp_path: Path,
    end: str,
) -> None:
    """kill -9 (or a graceful stop, which must not cancel the batch either) after the batch was
    submitted and every request's place in it recorded: the next worker follows that batch (no
    second submission, no synchronous call), and each request completes exactly once, batched,
    at the batch price. ``kill-before-tickets``: killed once the batch is made but before its
    create is answered, so only the requests' intents are recorded: the next worker finds the
    batch by its input file and follows it all the same."""
    server.hold = True
    before_tickets = end == "kill-before-tickets"
    if before_tickets:
        server.create_answer_delay_s = 60.0
    routing = tmp_path / "routing.yaml"
    routing.write_text(ROUTING.format(url=server.url))
    settings = line_settings.model_copy(
        update={"routing_file": routing, "api_keys": {"oai": SecretStr("sk-oai")}}
    )
    asyncio.run(ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings)))
    names = TopicNames.with_prefix(settings.topic_prefix)
    run = uuid.uuid4().hex[:8]
    requests = [
        GenerationRequest(
            request_id=f"crash-{run}-{i:03d}",
            idempotency_key=f"crash-{run}-{i:03d}",
            tenant="acme",
            campaign_id=f"crash-{run}",
            kind=AssetKind.TEXT,
            prompt_template=f"Headline for product {i}",
            model=ModelSpec(alias="copy"),
            latency_budget_ms=86_400_000,
        )
        for i in range(COUNT)
    ]
    ids = [r.request_id for r in requests]

    def tickets(intents: bool = False) -> set[str]:
        """Requests whose ticket names their batch (an intent, written before the create,
        does not: the batch may not exist yet), or with ``intents`` those with an intent."""
        records = asyncio.run(read_to_end(settings.kafka_bootstrap, names.generations))
        placed = set()
        for m in records:
            key = (m.key or b"").decode()
            ticket = decode_ticket(m.value) if "|batch-" in key and m.value else None
            if ticket is not None and ticket.intent == intents:
                placed.add(key.rsplit("|", 1)[0])
        return placed

    def made() -> int:
        return sum(len(b.calls) for b in dict(server.batches).values())

    first = start_worker(settings)
    _wait_ready(first)

    async def submit() -> None:
        async with LineClient(settings) as client:
            await client.submit(requests)

    asyncio.run(submit())
    deadline = time.monotonic() + 90
    while tickets(before_tickets) != set(ids) or (before_tickets and made() != COUNT):
        assert time.monotonic() < deadline, first.log_tail()
        time.sleep(0.5)
    submitted = dict(server.batches)
    assert sum(len(b.calls) for b in submitted.values()) == COUNT
    if end == "stop":
        assert first.stop(timeout=30) is not None
    else:
        first.kill()  # the batch runs on at the provider; nothing is committed for these requests
    if before_tickets:
        assert tickets() == set(), "no ticket named its batch"
        server.create_answer_delay_s = 0.0

    second = start_worker(settings)
    _wait_ready(second)
    server.release()
    completions = asyncio.run(await_completions(settings, ids, timeout=180))
    assert set(completions) == set(ids), second.log_tail()
    time.sleep(3.0)  # a double would come late
    codec = Codecs.load().completed
    done = [
        codec.decode(m.value or b"")
        for m in asyncio.run(read_to_end(settings.kafka_bootstrap, names.completed))
    ]
    assert Counter(c.request_id for c in done) == Counter(ids)
    assert {c.status for c in done} == {CompletionStatus.DELIVERED}
    assert all(c.attempts and c.attempts[-1].batched for c in done)
    assert sum(c.cost for c in done) == pytest.approx(0.5 * SYNC_COST * COUNT)
    assert server.batches.keys() == submitted.keys(), "a batch was submitted again"
    assert server.sync_calls == 0
    assert server.cancels == []


LATE_ROUTING = """
providers:
  oai: {{type: openai, base_url: "{url}/v1", api_key: oai}}
aliases:
  copy:
    latency_budget_ms: 1000
    chain:
      - {{provider: oai, model: gpt-4o-mini, version: gpt-4o-mini-2024-07-18, max_retries: 0,
          price: {{input_per_1k: 0.15, output_per_1k: 0.60}}}}
    batch: {{provider: oai, model: gpt-4o-mini, version: gpt-4o-mini-2024-07-18,
             window_s: 0.1, margin_s: 0, max_size: 50, max_age_s: 0.5, poll_s: 0.2,
             price: {{input_per_1k: 0.075, output_per_1k: 0.30}}}}
default_alias: copy
"""


def test_a_batch_answer_after_its_request_went_synchronous_is_booked_once(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    server: BatchServer,
    tmp_path: Path,
) -> None:
    """Two requests share a batch; the one due in 4 s gives up on it (1 s reserve), completes
    through the synchronous chain, and only then does the batch end: its answer for that request
    is billed, so the campaign's spend (the worker's spend table, on its changelog) counts it,
    while that request still has exactly one completion, with the synchronous cost."""
    server.hold = True
    routing = tmp_path / "routing.yaml"
    routing.write_text(LATE_ROUTING.format(url=server.url))
    settings = line_settings.model_copy(
        update={"routing_file": routing, "api_keys": {"oai": SecretStr("sk-oai")}}
    )
    asyncio.run(ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings)))
    names = TopicNames.with_prefix(settings.topic_prefix)
    worker = start_worker(settings)
    _wait_ready(worker)
    run = uuid.uuid4().hex[:8]
    campaign = f"late-{run}"

    def copy(name: str, budget_ms: int) -> GenerationRequest:
        return GenerationRequest(
            request_id=f"{name}-{run}",
            idempotency_key=f"{name}-{run}",
            tenant="acme",
            campaign_id=campaign,
            kind=AssetKind.TEXT,
            prompt_template=f"Headline {name}",
            model=ModelSpec(alias="copy"),
            latency_budget_ms=budget_ms,
        )

    hurried, patient = copy("hurried", 4_000), copy("patient", 86_400_000)

    async def submit() -> None:
        async with LineClient(settings) as client:
            await client.submit([hurried, patient])

    asyncio.run(submit())
    first = asyncio.run(await_completions(settings, [hurried.request_id], timeout=60))
    assert hurried.request_id in first, worker.log_tail()
    assert server.batch_sizes == [2], "both requests went into one batch"
    server.release()
    done = asyncio.run(await_completions(settings, [patient.request_id], timeout=60))
    assert patient.request_id in done, worker.log_tail()

    def spent() -> float:
        totals: dict[str, float] = {}
        for m in asyncio.run(read_to_end(settings.kafka_bootstrap, names.spend)):
            key = json.loads(m.key or b'""')
            if key.startswith(f"campaign:{campaign}|"):
                totals[key] = max(totals.get(key, 0.0), float(json.loads(m.value or b"0")))
        return sum(totals.values())

    expected = SYNC_COST + 2 * 0.5 * SYNC_COST  # the chain's answer + two batch answers
    deadline = time.monotonic() + 30
    while spent() < expected * 0.999 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert spent() == pytest.approx(expected), worker.log_tail()
    time.sleep(2.0)  # a double would come late
    codec = Codecs.load().completed
    completions = [
        codec.decode(m.value or b"")
        for m in asyncio.run(read_to_end(settings.kafka_bootstrap, names.completed))
    ]
    assert Counter(c.request_id for c in completions) == Counter(
        [hurried.request_id, patient.request_id]
    )
    by_id = {c.request_id: c for c in completions}
    late = by_id[hurried.request_id]
    assert [(a.batched, a.code) for a in late.attempts] == [(True, "batch.late"), (False, None)]
    assert late.cost == pytest.approx(SYNC_COST)
    assert by_id[patient.request_id].cost == pytest.approx(0.5 * SYNC_COST)
    assert server.sync_calls == 1
