"""A batched call is paid once: its request's next owner follows the batch a previous owner
submitted (issue 16 #5), and answers that come after their request went to the chain are
booked. Real HTTP against the local batch server; the ticket store is the generations table's
interface over a dict."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from agents.inference.batch import (
    BatchCollector,
    BatchLanes,
    BatchTickets,
    OpenAIBatchClient,
    Ticket,
    build_batch_clients,
    prompt_digest,
)
from agents.inference.batch._tickets import decode_ticket, encode_ticket, ticket_key
from agents.inference.prompt import render_prompt
from agents.inference.providers.base import Generated, Provider, ProviderCall, ProviderError
from agents.inference.providers.offline import OfflineProvider
from agents.inference.providers.openai import OpenAIConfig
from agents.inference.routing.adapters import build_adapters, close_adapters
from agents.inference.routing.budget import BudgetGuard, MemorySpendBook
from agents.inference.routing.config import BatchRung, RoutingConfig, parse_routing
from agents.inference.routing.metrics import ProviderMetrics
from agents.inference.routing.router import ModelRouter, RouteResult
from schemas.records import AssetKind, GenerationRequest, ModelSpec
from tests.support.batch_server import INPUT_TOKENS, OUTPUT_TOKENS, BatchServer, batch_server

ROUTING = """
providers:
  oai: {{type: openai, base_url: "{base}/v1", api_key: oai}}
aliases:
  copy:
    latency_budget_ms: 2000
    chain:
      - {{provider: oai, model: gpt-4o-mini, version: gpt-4o-mini-2024-07-18, max_retries: 0,
          price: {{input_per_1k: 0.15, output_per_1k: 0.60}}}}
    batch: {{provider: oai, model: gpt-4o-mini, version: gpt-4o-mini-2024-07-18,
             window_s: {window}, margin_s: 0, max_size: 8, max_age_s: 0.05, poll_s: 0.01,
             price: {{input_per_1k: 0.075, output_per_1k: 0.30}}}}
default_alias: copy
"""
DAY_MS = 86_400_000
BATCH_COST = (INPUT_TOKENS * 0.075 + OUTPUT_TOKENS * 0.30) / 1000.0
SYNC_COST = (INPUT_TOKENS * 0.15 + OUTPUT_TOKENS * 0.60) / 1000.0
T = TypeVar("T")


class DictStore(dict[bytes, bytes]):
    """The generations table's interface (get / acknowledged record) over a dict."""

    async def record(self, key: bytes, value: bytes) -> None:
        self[key] = value


@pytest.fixture
def server() -> Iterator[BatchServer]:
    with batch_server() as started:
        yield started


def config(server: BatchServer, window_s: float = 3600) -> RoutingConfig:
    return parse_routing(ROUTING.format(base=server.url, window=window_s), ".yaml")


def request(i: int, budget_ms: int = DAY_MS) -> GenerationRequest:
    return GenerationRequest(
        request_id=f"d-{i}",
        idempotency_key=f"dk-{i}",
        tenant="acme",
        campaign_id="spring",
        kind=AssetKind.TEXT,
        prompt_template=f"Headline {i}",
        model=ModelSpec(alias="copy"),
        latency_budget_ms=budget_ms,
    )


def call(n: int) -> ProviderCall:
    return ProviderCall(request=request(n), prompt=f"ad {n}", model="gpt-4o-mini")


@dataclass
class Worker:
    """One worker's router with batch lanes, over a shared ticket store."""

    router: ModelRouter
    book: MemorySpendBook
    registry: CollectorRegistry
    adapters: dict[str, Provider]

    @property
    def lanes(self) -> BatchLanes:
        assert self.router.batches is not None
        return self.router.batches

    async def close(self) -> None:
        await self.lanes.aclose()
        await close_adapters(self.adapters)


def worker(cfg: RoutingConfig, store: DictStore | None) -> Worker:
    adapters = build_adapters(cfg, {"oai": SecretStr("sk-oai")}, OfflineProvider())
    book = MemorySpendBook()
    registry = CollectorRegistry()
    router = ModelRouter(
        cfg, adapters, BudgetGuard(cfg.budgets, book), ProviderMetrics.build(registry)
    )
    lanes = BatchLanes(cfg, build_batch_clients(cfg, {"oai": SecretStr("k")}), registry=registry)
    if store is not None:
        lanes.tickets = BatchTickets(store)
    router.batches = lanes
    return Worker(router, book, registry, adapters)


async def until(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


def run(body: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(body)


def steps(result: RouteResult) -> list[tuple[bool, str | None]]:
    return [(a.batched, a.code) for a in result.attempts]


def test_the_next_owner_follows_the_batch_instead_of_paying_again(server: BatchServer) -> None:
    """The worker loses the requests while their batch runs (a crash or a rebalance cancels
    their handlers): the batch is not cancelled, and the next owner, reading the same ticket
    store, answers every request from that batch: one batch, no second submission."""
    server.hold = True
    cfg = config(server)
    store = DictStore()
    count = 5

    async def go() -> tuple[list[RouteResult], Worker, Worker]:
        first = worker(cfg, store)
        lost = [asyncio.create_task(first.router.route(request(i))) for i in range(count)]
        await until(lambda: len(store) == count)  # every place in the batch is recorded
        for task in lost:
            task.cancel()
        await asyncio.gather(*lost, return_exceptions=True)
        await asyncio.sleep(0.2)  # a poll already on its way may still land
        polls = server.polls
        await asyncio.sleep(0.2)
        assert server.polls == polls, "nobody waits: the batch is no longer polled here"
        await first.close()  # a stopping worker leaves recorded batches running
        assert server.cancels == []
        second = worker(cfg, store)
        server.release()
        try:
            results = await asyncio.gather(*(second.router.route(request(i)) for i in range(count)))
        finally:
            await second.close()
        return list(results), first, second

    results, first, second = run(go())
    assert server.batch_sizes == [count]  # submitted once, by the first owner
    assert server.sync_calls == 0
    for i, result in enumerate(results):
        assert result.generated is not None
        assert result.generated.data == f"copy for: Headline {i}".encode()
        assert steps(result) == [(True, None)]
        assert result.cost == pytest.approx(BATCH_COST)
    assert first.book.spent("campaign:spring") == 0.0  # the lost calls were not booked there
    assert second.book.spent("campaign:spring") == pytest.approx(count * BATCH_COST)
    collector = second.lanes.collectors["copy"]
    assert (collector.stats.batches, collector.stats.resumed_batches) == (0, 1)
    resumed = second.registry.get_sample_value(
        "assetline_batch_resumed_calls_total", {"provider": "oai", "model": "gpt-4o-mini"}
    )
    assert resumed == count


def test_a_resumed_request_needs_no_window_only_time_before_its_reserve(
    server: BatchServer,
) -> None:
    """The request comes round with 5 s of its day left: too little for a new batch (window
    1 h), enough to wait for the batch it is already in until the 2 s reserve."""
    server.hold = True
    cfg = config(server)
    store = DictStore()

    async def go() -> RouteResult:
        first = worker(cfg, store)
        lost = asyncio.create_task(first.router.route(request(0)))
        await until(lambda: len(store) == 1)
        lost.cancel()
        await asyncio.gather(lost, return_exceptions=True)
        await first.close()
        assert server.cancels == []
        second = worker(cfg, store)
        aged = request(0).model_copy(
            update={"created_at": datetime.now(UTC) - timedelta(milliseconds=DAY_MS - 5000)}
        )
        server.release()
        try:
            return await second.router.route(aged)
        finally:
            await second.close()

    result = run(go())
    assert steps(result) == [(True, None)]
    assert server.batch_sizes == [1]
    assert server.sync_calls == 0


def test_a_recorded_batch_the_provider_does_not_know_falls_back_to_the_chain(
    server: BatchServer,
) -> None:
    cfg = config(server)
    store = DictStore()
    entry = cfg.aliases["copy"].batch
    assert entry is not None
    first = request(0)
    ticket = Ticket(
        "oai", entry.entry.wire_model, "batch_424242", "gone-1", prompt_digest(render_prompt(first))
    )

    async def go() -> RouteResult:
        await BatchTickets(store).record(first, ticket)
        w = worker(cfg, store)
        try:
            return await w.router.route(first)
        finally:
            await w.close()

    result = run(go())
    assert steps(result) == [(True, "provider.bad_request"), (False, None)]
    assert server.batch_sizes == []  # followed, never submitted
    assert server.sync_calls == 1


def test_a_ticket_for_another_prompt_or_rung_is_not_followed(server: BatchServer) -> None:
    cfg = config(server)
    store = DictStore()
    entry = cfg.aliases["copy"].batch
    assert entry is not None
    wire = entry.entry.wire_model
    digest = prompt_digest(render_prompt(request(1)))

    async def go() -> list[RouteResult]:
        tickets = BatchTickets(store)
        await tickets.record(request(0), Ticket("oai", wire, "batch_1", "x-1", "0" * 64))
        await tickets.record(request(1), Ticket("oai", "other-model", "batch_1", "x-2", digest))
        w = worker(cfg, store)
        try:
            return list(
                await asyncio.gather(w.router.route(request(0)), w.router.route(request(1)))
            )
        finally:
            await w.close()

    results = run(go())
    assert [steps(r) for r in results] == [[(True, None)], [(True, None)]]
    assert server.batch_sizes == [2]  # both batched anew (and recorded anew)
    recorded = [decode_ticket(store[ticket_key(request(i))]) for i in (0, 1)]
    assert {t.batch_id if t is not None else None for t in recorded} == set(server.batches)


def test_unreadable_tickets_are_ignored() -> None:
    good = Ticket("oai", "m", "batch_1", "abc-1", "f" * 64)
    assert decode_ticket(encode_ticket(good, 1_700_000_000_000)) == good
    for bad in (
        b"",
        b"1700000000000 {not json",
        b'1700000000000 {"format":2,"provider":"oai"}',
        encode_ticket(Ticket("oai", "m", "batch_1", "bad id!", "f" * 64), 0),
    ):
        assert decode_ticket(bad) is None


def test_an_answer_after_the_give_up_is_booked_and_the_completion_stays_single(
    server: BatchServer,
) -> None:
    """Two requests share a batch; the one with the short deadline gives up, goes to the chain
    and is served there; the batch then ends and answers it too: its cost is booked into the
    request's budgets (the provider bills it), its result is not touched."""
    server.hold = True
    cfg = config(server, window_s=0.1)  # reserve: the alias's 2 s

    async def go() -> tuple[list[RouteResult], Worker]:
        w = worker(cfg, DictStore())
        try:
            patient = asyncio.create_task(w.router.route(request(1)))
            hurried = await w.router.route(request(0, budget_ms=2300))  # gives up after ~0.3 s
            server.release()
            served = await patient
            collector = w.lanes.collectors["copy"]
            await until(lambda: collector.stats.late_cost > 0)
            return [hurried, served], w
        finally:
            await w.close()

    (hurried, patient), w = run(go())
    assert server.batch_sizes == [2]
    assert steps(hurried) == [(True, "batch.late"), (False, None)]
    assert hurried.cost == pytest.approx(SYNC_COST)  # its result: the chain's answer only
    assert steps(patient) == [(True, None)]
    # booked: both results and the hurried request's late batch answer
    spent = w.book.spent("campaign:spring")
    assert spent == pytest.approx(SYNC_COST + BATCH_COST + BATCH_COST)
    labels = {"provider": "oai", "model": "gpt-4o-mini"}
    assert w.registry.get_sample_value("assetline_batch_late_cost_usd_total", labels) == (
        pytest.approx(BATCH_COST)
    )
    assert w.registry.get_sample_value(
        "assetline_provider_cost_usd_total", labels
    ) == pytest.approx(spent)


def test_a_resumed_request_that_gives_up_books_the_late_answer_and_cancels_nothing(
    server: BatchServer,
) -> None:
    """The next owner resumes a request with 5 s left (2 s reserve): the batch is still held
    when it gives up, so the chain serves it; the batch then ends: the resumed batch is never
    cancelled (other requests of it may still come round) and its answer is booked."""
    server.hold = True
    cfg = config(server)
    store = DictStore()

    async def go() -> tuple[RouteResult, Worker]:
        first = worker(cfg, store)
        lost = asyncio.create_task(first.router.route(request(0)))
        await until(lambda: len(store) == 1)
        lost.cancel()
        await asyncio.gather(lost, return_exceptions=True)
        await first.close()
        second = worker(cfg, store)
        aged = request(0).model_copy(
            update={"created_at": datetime.now(UTC) - timedelta(milliseconds=DAY_MS - 5000)}
        )
        try:
            result = await second.router.route(aged)
            server.release()
            collector = second.lanes.collectors["copy"]
            await until(lambda: collector.stats.late_cost > 0)
            return result, second
        finally:
            await second.close()

    result, second = run(go())
    assert steps(result) == [(True, "batch.late"), (False, None)]
    assert result.cost == pytest.approx(SYNC_COST)
    assert server.batch_sizes == [1]
    assert server.cancels == []
    assert second.book.spent("campaign:spring") == pytest.approx(SYNC_COST + BATCH_COST)


def test_a_durable_batch_left_by_one_caller_and_given_up_by_another_is_kept_and_booked(
    server: BatchServer,
) -> None:
    """With durable tickets, one caller of a batch leaves with its partition (its next owner
    will resume the batch) and the other gives up: the batch is not cancelled, and the answer
    for the one that gave up still reaches its ``on_late`` when the batch ends."""
    server.hold = True
    booked: list[Generated | ProviderError] = []

    async def go() -> BatchCollector:
        client = OpenAIBatchClient("oai", OpenAIConfig(base_url=f"{server.url}/v1"), "k")
        price = {"input_per_1k": 1.0, "output_per_1k": 1.0}
        rung = BatchRung(provider="oai", model="m", max_size=2, poll_s=0.01, price=price)
        collector = BatchCollector(rung, client)
        collector.durable = True
        try:
            leaving = asyncio.create_task(collector.run(call(0), time.time() + 3600))
            hurried = asyncio.create_task(
                collector.run(call(1), time.time() + 0.3, on_late=booked.append)
            )
            await until(lambda: bool(server.batches))
            leaving.cancel()
            outcome = await hurried
            assert isinstance(outcome, ProviderError)
            assert outcome.code == "batch.late"
            server.release()
            await until(lambda: bool(booked))
            return collector
        finally:
            await collector.aclose()
            await client.aclose()

    collector = run(go())
    assert server.cancels == []
    (answer,) = booked
    assert isinstance(answer, Generated)
    assert collector.stats.late_cost == pytest.approx((INPUT_TOKENS + OUTPUT_TOKENS) / 1000)
