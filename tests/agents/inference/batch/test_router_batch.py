"""The router with a batch rung, over real HTTP: a local server plays both the batch API and
the synchronous chat endpoint of one OpenAI-shaped provider."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from agents.inference.batch import BatchLanes, build_batch_clients
from agents.inference.providers.offline import OfflineProvider
from agents.inference.routing.adapters import build_adapters, close_adapters
from agents.inference.routing.budget import BudgetGuard, MemorySpendBook
from agents.inference.routing.config import RoutingConfig, parse_routing
from agents.inference.routing.metrics import ProviderMetrics
from agents.inference.routing.router import ModelRouter, RouteResult
from schemas.records import AssetKind, GenerationRequest, ModelSpec
from tests.support.batch_server import BatchServer, batch_server

ROUTING = """
providers:
  oai: {{type: {api}, base_url: "{base}", api_key: oai}}
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
retry: {{base_s: 0.01, cap_s: 0.05}}
"""
DAY_MS = 86_400_000


@pytest.fixture
def server() -> Iterator[BatchServer]:
    with batch_server() as started:
        yield started


def config(server: BatchServer, window_s: float = 3600, api: str = "openai") -> RoutingConfig:
    base = f"{server.url}/v1" if api == "openai" else server.url
    return parse_routing(ROUTING.format(api=api, base=base, window=window_s), ".yaml")


def request(i: int, budget_ms: int | None) -> GenerationRequest:
    return GenerationRequest(
        request_id=f"r-{i}",
        idempotency_key=f"k-{i}",
        tenant="acme",
        campaign_id="spring",
        kind=AssetKind.TEXT,
        prompt_template=f"Headline {i}",
        model=ModelSpec(alias="copy"),
        latency_budget_ms=budget_ms,
    )


@dataclass
class Campaign:
    results: list[RouteResult]
    book: MemorySpendBook
    registry: CollectorRegistry

    def metric(self, name: str, **labels: str) -> float:
        labels = {"provider": "oai", "model": "gpt-4o-mini", **labels}
        return self.registry.get_sample_value(name, labels) or 0.0

    @property
    def cost(self) -> float:
        return sum(r.cost for r in self.results)

    @property
    def batched(self) -> list[RouteResult]:
        return [r for r in self.results if r.generated is not None and r.attempts[-1].batched]


def campaign(
    cfg: RoutingConfig, count: int, budget_ms: int | None, *, batches: bool = True
) -> Campaign:
    async def go() -> Campaign:
        adapters = build_adapters(cfg, {"oai": SecretStr("sk-oai")}, OfflineProvider())
        book = MemorySpendBook()
        registry = CollectorRegistry()
        metrics = ProviderMetrics.build(registry)
        router = ModelRouter(cfg, adapters, BudgetGuard(cfg.budgets, book), metrics)
        if batches:
            clients = build_batch_clients(cfg, {"oai": SecretStr("k")})
            router.batches = BatchLanes(cfg, clients, registry=registry)
        try:
            results = await asyncio.gather(
                *(router.route(request(i, budget_ms)) for i in range(count))
            )
            return Campaign(list(results), book, registry)
        finally:
            if router.batches is not None:
                await router.batches.aclose()
            await close_adapters(adapters)

    return asyncio.run(go())


@pytest.mark.parametrize("api", ["openai", "anthropic"])
def test_a_campaign_with_a_day_to_spare_goes_through_batches_at_about_half_the_cost(
    server: BatchServer, api: str
) -> None:
    cfg = config(server, api=api)
    batched = campaign(cfg, 40, DAY_MS)
    synchronous = campaign(cfg, 40, DAY_MS, batches=False)
    assert all(r.generated is not None for r in batched.results + synchronous.results)
    assert len(batched.batched) >= 0.95 * 40
    assert batched.cost <= 0.55 * synchronous.cost
    assert batched.cost > 0
    # booked through the same spend guard as synchronous calls
    assert batched.book.spent("campaign:spring") == pytest.approx(batched.cost)
    attempt = batched.batched[0].attempts[-1]
    assert attempt.code is None
    assert attempt.cost == pytest.approx((100 * 0.075 + 200 * 0.30) / 1000)
    assert max(server.batch_sizes) <= 8
    assert server.sync_calls == 40  # only the synchronous campaign's
    # a batch's wait is not a provider call's latency: it has metrics of its own
    assert batched.metric("assetline_provider_call_seconds_count") == 0
    assert batched.metric("assetline_batch_wait_seconds_count") == 40
    assert batched.metric("assetline_batch_calls_total", outcome="ok") == 40
    assert batched.metric("assetline_batch_submitted_total") == len(server.batch_sizes)
    assert batched.metric("assetline_batch_waiting") == 0
    assert batched.metric("assetline_provider_requests_total", outcome="ok") == 40
    assert synchronous.metric("assetline_provider_call_seconds_count") == 40


def test_short_deadlines_stay_synchronous(server: BatchServer) -> None:
    result = campaign(config(server), 3, None)
    assert [r.attempts[-1].batched for r in result.results] == [False] * 3
    assert server.batches == {}
    assert server.sync_calls == 3


def test_a_failed_batch_falls_back_to_the_chain(server: BatchServer) -> None:
    server.terminal = "failed"
    result = campaign(config(server), 4, DAY_MS)
    for routed in result.results:
        assert routed.generated is not None
        first, second = routed.attempts
        assert (first.batched, first.code, first.cost) == (True, "batch.failed", 0.0)
        assert (second.batched, second.code) == (False, None)
    assert server.sync_calls == 4


def test_a_batch_whose_create_answer_was_lost_is_followed_not_paid_again(
    server: BatchServer,
) -> None:
    """A 502 after the batch was made: the requests are answered by that batch (half price),
    none goes to the synchronous chain, which would have paid for each call twice."""
    server.create_status = 502
    result = campaign(config(server), 4, DAY_MS)
    assert all(r.generated is not None for r in result.results)
    assert len(result.batched) == 4
    assert server.sync_calls == 0
    assert sum(server.batch_sizes) == 4


def test_a_partial_batch_serves_what_it_has_and_sends_the_rest_to_the_chain(
    server: BatchServer,
) -> None:
    server.missing_every = 4
    result = campaign(config(server), 8, DAY_MS)
    assert all(r.generated is not None for r in result.results)
    assert len(result.batched) == 6
    assert server.sync_calls == 2


def test_a_late_batch_falls_back_before_the_deadline(server: BatchServer) -> None:
    server.hold = True
    # deadline 2.3 s, window 0.1 s, reserve = the alias's 2 s: batched, given up after ~0.3 s
    result = campaign(config(server, window_s=0.1), 2, 2300)
    for routed in result.results:
        assert routed.generated is not None
        assert [(a.batched, a.code) for a in routed.attempts] == [
            (True, "batch.late"),
            (False, None),
        ]
    assert len(server.cancels) == 1
