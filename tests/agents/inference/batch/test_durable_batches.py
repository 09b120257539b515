"""A batched call is paid once: its request's next owner follows the batch a previous owner
submitted (issue 16 #5), also when only its intent was recorded before a crash (the batch is
then found by its input file), and answers that come after their request went to the chain are
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
    AnthropicBatchClient,
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
from agents.inference.providers.anthropic import AnthropicConfig
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


def is_intent(value: bytes) -> bool:
    ticket = decode_ticket(value)
    return ticket is not None and ticket.intent


class SlowStore(DictStore):
    """Acknowledges each write 0.2 s later, noting the intents and what the provider had been
    asked when each was acknowledged."""

    def __init__(self, server: BatchServer) -> None:
        super().__init__()
        self.server = server
        self.intents: list[tuple[Ticket, list[tuple[str, str]]]] = []

    async def record(self, key: bytes, value: bytes) -> None:
        self[key] = value
        await asyncio.sleep(0.2)
        ticket = decode_ticket(value)
        if ticket is not None and ticket.intent:
            self.intents.append((ticket, list(self.server.requests)))


class DyingStore(DictStore):
    """The worker dies once the intents are acknowledged: a batch's ticket never lands."""

    async def record(self, key: bytes, value: bytes) -> None:
        if not is_intent(value):
            await asyncio.Event().wait()
        self[key] = value


class UnacknowledgedIntents(DictStore):
    """Intents reach the store but their acknowledgement never comes."""

    async def record(self, key: bytes, value: bytes) -> None:
        self[key] = value
        if is_intent(value):
            await asyncio.Event().wait()


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


async def abandon(tasks: list[asyncio.Task[RouteResult]]) -> None:
    """The callers leave (their worker loses the partitions or stops)."""
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def route_all(owner: Worker, count: int) -> list[RouteResult]:
    """Requests 0..count-1 routed by ``owner``, which is closed afterwards."""
    try:
        return list(await asyncio.gather(*(owner.router.route(request(i)) for i in range(count))))
    finally:
        await owner.close()


def assert_served_by_the_batch(results: list[RouteResult]) -> None:
    """Each request got its own answer from the one batch, at the batch price."""
    for i, result in enumerate(results):
        assert result.generated is not None
        assert result.generated.data == f"copy for: Headline {i}".encode()
        assert steps(result) == [(True, None)]
        assert result.cost == pytest.approx(BATCH_COST)


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
        await abandon(lost)
        await asyncio.sleep(0.2)  # a poll already on its way may still land
        polls = server.polls
        await asyncio.sleep(0.2)
        assert server.polls == polls, "nobody waits: the batch is no longer polled here"
        await first.close()  # a stopping worker leaves recorded batches running
        assert server.cancels == []
        second = worker(cfg, store)
        server.release()
        results = await route_all(second, count)
        return list(results), first, second

    results, first, second = run(go())
    assert server.batch_sizes == [count]  # submitted once, by the first owner
    assert server.sync_calls == 0
    assert_served_by_the_batch(results)
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
    assert b"input_file_id" not in encode_ticket(good, 0)  # as before intents
    intent = Ticket("oai", "m", "", "abc-1", "f" * 64, "file-1")
    assert decode_ticket(encode_ticket(intent, 0)) == intent
    assert intent.intent
    assert not good.intent
    for bad in (
        b"",
        b"1700000000000 {not json",
        b'1700000000000 {"format":2,"provider":"oai"}',
        encode_ticket(Ticket("oai", "m", "batch_1", "bad id!", "f" * 64), 0),
        encode_ticket(Ticket("oai", "m", "", "abc-1", "f" * 64), 0),  # neither batch nor file
        b'1700000000000 {"format":1,"provider":"oai","model":"m","batch_id":"",'
        b'"custom_id":"abc-1","prompt_sha256":"ff","input_file_id":7}',
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


def test_each_intent_is_acknowledged_before_the_create_reaches_the_provider(
    server: BatchServer,
) -> None:
    """OpenAI's calls go up as a file first: every request's intent (that file, its
    custom_id) is acknowledged before the batch is created on it, then replaced by the
    batch's ticket. The store takes 0.2 s to acknowledge: the create waits for it."""
    cfg = config(server)
    store = SlowStore(server)
    count = 3

    async def go() -> list[RouteResult]:
        w = worker(cfg, store)
        try:
            return list(await asyncio.gather(*(w.router.route(request(i)) for i in range(count))))
        finally:
            await w.close()

    results = run(go())
    assert [steps(r) for r in results] == [[(True, None)]] * count
    assert (server.uploads, server.creates) == (1, 1)
    upload, create = ("POST", "/v1/files"), ("POST", "/v1/batches")
    assert server.requests.index(upload) < server.requests.index(create)
    ((batch_id, batch),) = server.batches.items()
    assert len(store.intents) == count
    for intent, seen_by_then in store.intents:
        assert upload in seen_by_then
        assert create not in seen_by_then
        assert intent.input_file_id == batch.input_file_id
    assert sorted(t.custom_id for t, _ in store.intents) == sorted(c for c, _ in batch.calls)
    for i in range(count):
        ticket = decode_ticket(store[ticket_key(request(i))])
        assert ticket is not None
        assert ticket.batch_id == batch_id


@pytest.mark.parametrize("list_errors", [[], [500, 503]])
def test_a_crash_between_the_create_and_its_tickets_is_resumed_from_the_intents(
    server: BatchServer, list_errors: list[int]
) -> None:
    """The worker dies after the batch was created on the file and before any ticket with its
    id landed: the next owner finds the intents, looks the batch up by its input file (a
    lookup failing for a while is tried again) and follows it. One upload, one create, no
    synchronous call; the batch's ticket is recorded, so a later owner needs no lookup."""
    server.hold = True
    cfg = config(server)
    store = DyingStore()
    count = 3

    async def go() -> tuple[list[RouteResult], Worker, DictStore]:
        first = worker(cfg, store)
        lost = [asyncio.create_task(first.router.route(request(i))) for i in range(count)]
        await until(lambda: server.creates == 1)
        await asyncio.sleep(0.1)  # the tickets with the batch id are under way: never landing
        assert len(store) == count
        assert all(is_intent(value) for value in store.values())
        await abandon(lost)
        await first.close()
        assert server.cancels == []
        left = DictStore(store)
        server.list_errors = list(list_errors)
        second = worker(cfg, left)
        server.release()
        results = await route_all(second, count)
        return list(results), second, left

    results, second, left = run(go())
    assert (server.uploads, server.creates) == (1, 1)
    assert server.batch_sizes == [count]
    assert server.sync_calls == 0
    assert_served_by_the_batch(results)
    lookups = server.seen("GET", "/v1/batches")
    if list_errors:
        assert lookups >= 1 + len(list_errors)
    else:
        assert lookups == 1  # the batch's requests share one lookup
    collector = second.lanes.collectors["copy"]
    assert (collector.stats.batches, collector.stats.resumed_batches) == (0, 1)
    ((batch_id, _),) = server.batches.items()
    for i in range(count):
        ticket = decode_ticket(left[ticket_key(request(i))])
        assert ticket is not None
        assert ticket.batch_id == batch_id


def test_an_intent_whose_batch_was_never_created_is_batched_anew_once(
    server: BatchServer,
) -> None:
    """The worker dies while its intents are being acknowledged, before the create: the next
    owner's lookup finds no batch made from that file, so each call goes into one new
    batch (a second upload, the only create)."""
    cfg = config(server)
    store = UnacknowledgedIntents()
    count = 3

    async def go() -> tuple[list[RouteResult], DictStore]:
        first = worker(cfg, store)
        lost = [asyncio.create_task(first.router.route(request(i))) for i in range(count)]
        await until(lambda: len(store) == count)
        await asyncio.sleep(0.1)
        assert server.creates == 0  # waiting for the intents' acknowledgements
        await abandon(lost)
        await first.close()
        left = DictStore(store)
        second = worker(cfg, left)
        results = await route_all(second, count)
        return list(results), left

    results, left = run(go())
    assert (server.uploads, server.creates) == (2, 1)
    assert server.batch_sizes == [count]
    assert server.sync_calls == 0
    assert [steps(r) for r in results] == [[(True, None)]] * count
    ((batch_id, _),) = server.batches.items()
    for i in range(count):
        ticket = decode_ticket(left[ticket_key(request(i))])
        assert ticket is not None
        assert ticket.batch_id == batch_id


def test_an_intent_not_acknowledged_in_time_does_not_hold_the_batch(server: BatchServer) -> None:
    """The broker does not answer: the create goes ahead after ``intent_wait_s`` (the call
    unrecorded until its batch's ticket, as when a ticket fails) and the request is served."""
    cfg = config(server)
    store = UnacknowledgedIntents()

    async def go() -> tuple[RouteResult, float]:
        w = worker(cfg, store)
        w.lanes.collectors["copy"].intent_wait_s = 0.3
        started = time.monotonic()
        try:
            return await w.router.route(request(0)), time.monotonic() - started
        finally:
            await w.close()

    result, took = run(go())
    assert steps(result) == [(True, None)]
    assert took >= 0.3
    assert (server.uploads, server.creates) == (1, 1)
    ticket = decode_ticket(store[ticket_key(request(0))])
    assert ticket is not None
    assert ticket.batch_id == next(iter(server.batches))


def intent_for(cfg: RoutingConfig, which: GenerationRequest, input_file_id: str) -> Ticket:
    rung = cfg.aliases["copy"].batch
    assert rung is not None
    digest = prompt_digest(render_prompt(which))
    return Ticket("oai", rung.entry.wire_model, "", "lost-1", digest, input_file_id)


def test_an_intent_whose_lookup_fails_goes_to_the_chain_not_to_a_new_batch(
    server: BatchServer,
) -> None:
    """Whether a batch was made from the file is not known: a new batch could pay the call
    twice, a day late; the chain answers it in time."""
    server.list_errors = [400]
    cfg = config(server)
    store = DictStore()
    first = request(0)

    async def go() -> RouteResult:
        await BatchTickets(store).record(first, intent_for(cfg, first, "file-lost"))
        w = worker(cfg, store)
        try:
            return await w.router.route(first)
        finally:
            await w.close()

    result = run(go())
    assert steps(result) == [(True, "provider.bad_request"), (False, None)]
    assert (server.uploads, server.creates) == (0, 0)
    assert server.sync_calls == 1


def test_an_intent_with_too_little_time_for_a_new_batch_goes_to_the_chain(
    server: BatchServer,
) -> None:
    """With 5 s left the intent is looked up (a found batch needs no window); none was
    made, and a new batch's hour-long window does not fit: the chain serves it."""
    cfg = config(server)
    store = DictStore()
    aged = request(0).model_copy(
        update={"created_at": datetime.now(UTC) - timedelta(milliseconds=DAY_MS - 5000)}
    )

    async def go() -> RouteResult:
        await BatchTickets(store).record(aged, intent_for(cfg, aged, "file-never"))
        w = worker(cfg, store)
        try:
            return await w.router.route(aged)
        finally:
            await w.close()

    result = run(go())
    assert steps(result) == [(False, None)]
    assert server.seen("GET", "/v1/batches") == 1
    assert (server.uploads, server.creates) == (0, 0)
    assert server.sync_calls == 1


def test_a_client_that_creates_in_one_exchange_records_no_intent(server: BatchServer) -> None:
    """Anthropic's create carries the calls: nothing to record before it, the window stays."""
    intents: list[str] = []

    async def intend(input_file_id: str, custom_id: str) -> bool:
        intents.append(input_file_id)
        return True

    async def go() -> Generated | ProviderError:
        client = AnthropicBatchClient("ant", AnthropicConfig(base_url=server.url), "k")
        price = {"input_per_1k": 1.0, "output_per_1k": 1.0}
        rung = BatchRung(provider="ant", model="m", max_size=1, poll_s=0.01, price=price)
        collector = BatchCollector(rung, client)
        one = ProviderCall(request=request(0), prompt="ad 0", model="m", max_output_tokens=50)
        try:
            return await collector.run(one, time.time() + 60, on_intent=intend)
        finally:
            await collector.aclose()
            await client.aclose()

    assert isinstance(run(go()), Generated)
    assert intents == []
    assert server.batch_sizes == [1]


def test_a_lookup_failing_until_the_give_up_raises_its_error(server: BatchServer) -> None:
    """Tried again as a poll is, never answered "not found": at the give-up the error stands
    (the router then sends the request to the chain)."""
    server.list_errors = [500] * 1000

    async def go() -> ProviderError:
        client = OpenAIBatchClient("oai", OpenAIConfig(base_url=f"{server.url}/v1"), "k")
        price = {"input_per_1k": 1.0, "output_per_1k": 1.0}
        rung = BatchRung(provider="oai", model="m", poll_s=0.01, price=price)
        collector = BatchCollector(rung, client)
        try:
            with pytest.raises(ProviderError) as caught:
                await collector.created_from("file-1", time.time() + 0.3)
            return caught.value
        finally:
            await collector.aclose()
            await client.aclose()

    error = run(go())
    assert error.code == "provider.unavailable"
    assert server.seen("GET", "/v1/batches") > 1
