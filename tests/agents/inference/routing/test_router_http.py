"""The router over real HTTP: OpenAI-shaped servers on 127.0.0.1, real adapters, real sockets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from agents.inference.providers.offline import OfflineProvider
from agents.inference.routing.adapters import build_adapters, close_adapters
from agents.inference.routing.budget import BudgetGuard, MemorySpendBook
from agents.inference.routing.config import RoutingConfig, parse_routing
from agents.inference.routing.metrics import ProviderMetrics
from agents.inference.routing.router import ModelRouter, RouteResult
from schemas.records import AssetKind, GenerationRequest, ModelSpec
from tests.support.provider_server import (
    ProviderServer,
    Reply,
    openai_chat_response,
    openai_error,
    provider_server,
)

ROUTING = """
providers:
  primary: {{type: openai, base_url: "{url}/primary/v1", api_key: primary,
             breaker: {{failure_threshold: 2, reset_after_s: 0.3}}}}
  secondary: {{type: openai, base_url: "{url}/secondary/v1", api_key: secondary}}
aliases:
  copy:
    latency_budget_ms: {budget}
    chain:
      - {{provider: primary, model: gpt-4o-mini, version: gpt-4o-mini-2024-07-18,
          timeout_s: {timeout}, max_retries: 1, price: {{input_per_1k: 1.0, output_per_1k: 1.0}}}}
      - {{provider: secondary, model: llama, version: llama-3.1-8b-instruct, timeout_s: 5}}
default_alias: copy
retry: {{base_s: 0.01, cap_s: 0.05}}
"""
PRIMARY = "/primary/v1/chat/completions"
SECONDARY = "/secondary/v1/chat/completions"


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with provider_server() as started:
        started.handle("POST", SECONDARY, lambda body: Reply(json=openai_chat_response("ok")))
        yield started


def config(server: ProviderServer, *, timeout: float = 5, budget: int = 10_000) -> RoutingConfig:
    text = ROUTING.format(url=server.url, timeout=timeout, budget=budget)
    return parse_routing(text, ".yaml")


def route_all(cfg: RoutingConfig, count: int = 1, **kw: object) -> list[RouteResult]:
    async def go() -> list[RouteResult]:
        keys = {"primary": SecretStr("sk-primary"), "secondary": SecretStr("sk-secondary")}
        adapters = build_adapters(cfg, keys, OfflineProvider())
        router = ModelRouter(
            cfg,
            adapters,
            BudgetGuard(cfg.budgets, MemorySpendBook()),
            ProviderMetrics.build(CollectorRegistry()),
        )
        try:
            results = []
            for i in range(count):
                results.append(await router.route(request(i, **kw)))
                await asyncio.sleep(0)
            return results
        finally:
            await close_adapters(adapters)

    return asyncio.run(go())


def request(i: int = 0, **kw: object) -> GenerationRequest:
    return GenerationRequest(
        request_id=f"r-{i}",
        idempotency_key=f"k-{i}",
        tenant="acme",
        campaign_id="spring",
        kind=AssetKind.TEXT,
        prompt_template="Headline",
        model=ModelSpec(alias="copy"),
        **kw,  # type: ignore[arg-type]
    )


def test_primary_500s_then_the_secondary_serves(server: ProviderServer) -> None:
    error = openai_error("The server had an error", "server_error")
    server.handle("POST", PRIMARY, lambda body: Reply(status=500, json=error))
    (result,) = route_all(config(server))
    assert result.served_by is not None
    assert result.served_by.provider == "secondary"
    assert [a.code for a in result.attempts] == ["provider.unavailable"] * 2 + [None]
    primary_calls = server.requests_to(PRIMARY)
    assert len(primary_calls) == 2
    assert {c.json["model"] for c in primary_calls} == {"gpt-4o-mini-2024-07-18"}
    assert primary_calls[0].headers["authorization"] == "Bearer sk-primary"
    assert server.requests_to(SECONDARY)[0].headers["authorization"] == "Bearer sk-secondary"


def test_429_retry_after_is_waited_for_then_the_primary_serves(server: ProviderServer) -> None:
    limited = Reply(
        status=429, json=openai_error("slow down", "rate_limit_error"), headers={"Retry-After": "1"}
    )
    server.script("POST", PRIMARY, [limited, Reply(json=openai_chat_response("hi"))])
    started = time.perf_counter()
    (result,) = route_all(config(server))
    assert time.perf_counter() - started >= 1.0
    assert [a.code for a in result.attempts] == ["provider.rate_limited", None]
    assert result.cost > 0


def test_breaker_opens_sends_nothing_then_half_opens(server: ProviderServer) -> None:
    server.handle("POST", PRIMARY, lambda body: Reply(status=503, json=openai_error("x")))
    cfg = config(server)

    async def go() -> tuple[list[RouteResult], int, RouteResult]:
        adapters = build_adapters(
            cfg, {"primary": SecretStr("a"), "secondary": SecretStr("b")}, OfflineProvider()
        )
        router = ModelRouter(
            cfg,
            adapters,
            BudgetGuard(cfg.budgets, MemorySpendBook()),
            ProviderMetrics.build(CollectorRegistry()),
        )
        first = [await router.route(request(i)) for i in range(5)]
        calls_while_open = len(server.requests_to(PRIMARY))
        await asyncio.sleep(0.35)  # past reset_after_s: one probe goes through
        server.handle("POST", PRIMARY, lambda body: Reply(json=openai_chat_response("back")))
        probe = await router.route(request(9))
        await close_adapters(adapters)
        return first, calls_while_open, probe

    first, calls, probe = asyncio.run(go())
    assert calls == 2, "after two failures the breaker is open and the primary hears nothing"
    assert [a.code for a in first[-1].attempts] == ["breaker.open", None]
    assert probe.served_by is not None
    assert probe.served_by.provider == "primary"


def test_a_slow_primary_times_out_and_fails_over(server: ProviderServer) -> None:
    server.handle("POST", PRIMARY, lambda body: Reply(json=openai_chat_response("late"), delay_s=3))
    cfg = config(server, timeout=0.2)
    started = time.perf_counter()
    (result,) = route_all(cfg)
    elapsed = time.perf_counter() - started
    assert [a.code for a in result.attempts] == ["provider.timeout"] * 2 + [None]
    assert elapsed < 2 * 0.2 + 1.0  # two timed-out calls, backoff, the secondary; never 3 s


def test_the_latency_budget_cancels_a_hanging_http_call(server: ProviderServer) -> None:
    """The call is cut at the budget, long before the server would answer.

    How late the cut is belongs to ``bench.routing`` (budget kill lateness); here only that it
    happens at all, with a margin no loaded machine needs.
    """
    server.handle("POST", PRIMARY, lambda body: Reply(json=openai_chat_response("x"), delay_s=30))
    started = time.perf_counter()
    (result,) = route_all(config(server, budget=300))
    elapsed = time.perf_counter() - started
    assert result.error is not None
    assert result.error.code == "budget_exceeded"
    assert 0.3 <= elapsed < 10


def test_malformed_json_from_the_primary_is_retried_then_failed_over(
    server: ProviderServer,
) -> None:
    server.handle(
        "POST", PRIMARY, lambda body: Reply(body=b"{not json", content_type="application/json")
    )
    (result,) = route_all(config(server))
    assert [a.code for a in result.attempts] == ["provider.bad_response"] * 2 + [None]
    assert "sk-primary" not in " ".join(a.message or "" for a in result.attempts)
