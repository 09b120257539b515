"""Batch API exchanges go through the provider's circuit breaker and in-flight limit, like its
calls: failures open the breaker, an open breaker stops them, a 429 waits its Retry-After and
shrinks the limit without counting as a failure, and every operation is bounded in time.
Real HTTP against the scriptable provider server."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from agents.inference.batch import BatchLanes, bounded, build_batch_clients
from agents.inference.providers.base import ProviderError
from agents.inference.providers.offline import OfflineProvider
from agents.inference.routing.adapters import build_adapters, close_adapters
from agents.inference.routing.budget import BudgetGuard, MemorySpendBook
from agents.inference.routing.config import parse_routing
from agents.inference.routing.metrics import ProviderMetrics
from agents.inference.routing.router import ModelRouter, RouteResult
from schemas.records import AssetKind, GenerationRequest, ModelSpec
from streams.circuit_breaker import BreakerState
from tests.support.provider_server import (
    ProviderServer,
    Reply,
    openai_chat_response,
    openai_error,
    provider_server,
)

ROUTING = """
providers:
  oai: {{type: openai, base_url: "{base}/v1", api_key: oai,
         breaker: {{failure_threshold: 2, reset_after_s: 1}}}}
aliases:
  copy:
    latency_budget_ms: 5000
    chain:
      - {{provider: oai, model: m, max_retries: 0}}
    batch: {{provider: oai, model: m, window_s: 60, margin_s: 0, max_size: 1, max_age_s: 0.01,
             poll_s: 0.01, timeout_s: 5}}
default_alias: copy
"""
DAY_MS = 86_400_000


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with provider_server() as started:
        yield started


def request(i: int) -> GenerationRequest:
    return GenerationRequest(
        request_id=f"b-{i}",
        idempotency_key=f"bk-{i}",
        tenant="acme",
        campaign_id="c",
        kind=AssetKind.TEXT,
        prompt_template=f"Line {i}",
        model=ModelSpec(alias="copy"),
        latency_budget_ms=DAY_MS,
    )


def results_for(server: ProviderServer, text: str) -> Callable[[Any], Reply]:
    """The output file: ``text`` for the custom id of the last upload."""

    def results(_body: Any) -> Reply:
        upload = [r for r in server.requests_to("/v1/files") if r.method == "POST"][-1]
        custom_id = upload.body.split(b'"custom_id":"', 1)[1].split(b'"', 1)[0].decode()
        response = {"status_code": 200, "body": openai_chat_response(text)}
        line = {"custom_id": custom_id, "response": response, "error": None}
        return Reply(body=json.dumps(line).encode())

    return results


def routed(server: ProviderServer, count: int) -> tuple[list[RouteResult], ModelRouter]:
    cfg = parse_routing(ROUTING.format(base=server.url), ".yaml")

    async def go() -> tuple[list[RouteResult], ModelRouter]:
        adapters = build_adapters(cfg, {"oai": SecretStr("sk")}, OfflineProvider())
        metrics = ProviderMetrics.build(CollectorRegistry())
        router = ModelRouter(cfg, adapters, BudgetGuard(cfg.budgets, MemorySpendBook()), metrics)
        router.batches = BatchLanes(cfg, build_batch_clients(cfg, {"oai": SecretStr("sk")}))
        try:
            results = [await router.route(request(i)) for i in range(count)]  # one at a time
            return results, router
        finally:
            await router.batches.aclose()
            await close_adapters(adapters)

    return asyncio.run(go())


def test_batch_api_failures_open_the_breaker_and_an_open_one_stops_them(
    server: ProviderServer,
) -> None:
    down = Reply(status=503, json=openai_error("overloaded"))
    for path in ("/v1/files", "/v1/chat/completions"):
        server.handle("POST", path, lambda _body: down)
    results, router = routed(server, 2)
    # the first request: its batch upload and its chain call both fail -> 2 failures: open
    assert [(a.batched, a.code) for a in results[0].attempts] == [
        (True, "provider.unavailable"),
        (False, "provider.unavailable"),
    ]
    # the second: the open breaker refuses its batch upload before any HTTP; a refusal for
    # sure, so the upload waits for the breaker's probe (1 s) instead of going synchronous;
    # the probe fails, the breaker opens again and the chain's call is skipped
    assert [(a.batched, a.code) for a in results[1].attempts] == [
        (True, "provider.unavailable"),
        (False, "breaker.open"),
    ]
    assert router.breakers["oai"].state is BreakerState.OPEN
    uploads = [c.started for c in server.calls if c.path == "/v1/files"]
    assert len(uploads) == 2
    assert uploads[1] - uploads[0] >= 0.9  # nothing went out while the breaker was open
    assert len(server.requests_to("/v1/chat/completions")) == 1


def test_a_submission_answered_429_is_sent_again_after_its_retry_after(
    server: ProviderServer,
) -> None:
    busy = Reply(status=429, json=openai_error("slow down"), headers={"Retry-After": "0.5"})
    server.script("POST", "/v1/files", [busy, Reply(json={"id": "file-in"})])
    server.script("POST", "/v1/batches", [Reply(json={"id": "batch_1", "status": "validating"})])
    ended = {"id": "batch_1", "status": "completed", "output_file_id": "file-out"}
    server.script("GET", "/v1/batches/batch_1", [Reply(json=ended)])
    server.handle("GET", "/v1/files/file-out/content", results_for(server, "batched after all"))
    (result,), router = routed(server, 1)
    assert result.generated is not None
    assert result.generated.data == b"batched after all"
    assert [(a.batched, a.code) for a in result.attempts] == [(True, None)]
    uploads = [c.started for c in server.calls if c.path == "/v1/files"]
    assert len(uploads) == 2
    assert uploads[1] - uploads[0] >= 0.45
    assert server.requests_to("/v1/chat/completions") == []
    assert router.breakers["oai"].consecutive_failures == 0  # a 429 is no failure


def test_a_poll_answered_429_waits_its_retry_after_and_is_no_failure(
    server: ProviderServer,
) -> None:
    server.script("POST", "/v1/files", [Reply(json={"id": "file-in"})])
    server.script("POST", "/v1/batches", [Reply(json={"id": "batch_1", "status": "validating"})])
    ended = {"id": "batch_1", "status": "completed", "output_file_id": "file-out"}
    busy = Reply(status=429, json=openai_error("slow down"), headers={"Retry-After": "1"})
    server.script("GET", "/v1/batches/batch_1", [busy, busy, Reply(json=ended)])

    server.handle("GET", "/v1/files/file-out/content", results_for(server, "after the wait"))
    (result,), router = routed(server, 1)
    assert result.generated is not None
    assert result.generated.data == b"after the wait"
    polls = [c for c in server.calls if c.path == "/v1/batches/batch_1"]
    assert len(polls) == 3  # poll_s is 0.01 s: without the wait there would be ~200
    gaps = [b.started - a.started for a, b in itertools.pairwise(polls)]
    assert min(gaps) >= 0.95
    breaker = router.breakers["oai"]
    assert (breaker.state, breaker.consecutive_failures) == (BreakerState.CLOSED, 0)
    assert router.limits["oai"].limit < 16  # the 429 shrank the in-flight limit


def test_an_operation_is_bounded_as_a_whole() -> None:
    async def slow() -> str:
        await asyncio.sleep(5)
        return "late"

    async def go() -> ProviderError:
        with pytest.raises(ProviderError) as caught:
            await bounded("oai", slow, 0.05)
        return caught.value

    error = asyncio.run(go())
    assert (error.code, error.retryable) == ("provider.timeout", True)
