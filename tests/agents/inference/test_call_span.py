"""Provider-call spans with the GenAI semantic-convention attributes, exported to a real OTLP
receiver, for calls the router makes to an OpenAI-shaped server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

pytest.importorskip("opentelemetry.sdk")

from agents.inference.call_span import operation_of, provider_name
from agents.inference.providers.base import ProviderCall
from agents.inference.providers.offline import OfflineProvider
from agents.inference.routing.adapters import build_adapters, close_adapters
from agents.inference.routing.budget import BudgetGuard, MemorySpendBook
from agents.inference.routing.config import parse_routing
from agents.inference.routing.metrics import ProviderMetrics
from agents.inference.routing.router import ModelRouter, RouteResult
from schemas.records import AssetKind, GenerationRequest, ModelSpec
from streams.otel import OtelTracer
from streams.trace_context import parse_traceparent
from streams.tracing import CONSUMER, span
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.provider_server import (
    ProviderServer,
    Reply,
    openai_chat_response,
    openai_error,
    provider_server,
)

ROUTING = """
providers:
  primary: {{type: openai, base_url: "{url}/v1", api_key: primary}}
aliases:
  copy:
    chain:
      - {{provider: primary, model: gpt-4o-mini, version: gpt-4o-mini-2024-07-18,
          timeout_s: 5, max_retries: 1, max_output_tokens: 100}}
default_alias: copy
retry: {{base_s: 0.01, cap_s: 0.02}}
"""
PARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
KEY = "sk-never-in-a-span"
STATUS_ERROR = 2


@pytest.fixture
def collector() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with provider_server() as started:
        yield started


def _request(kind: AssetKind = AssetKind.TEXT) -> GenerationRequest:
    return GenerationRequest(
        request_id="r-1",
        idempotency_key="r-1",
        tenant="acme",
        campaign_id="spring",
        kind=kind,
        prompt_template="Secret launch copy for ${p}",
        variables={"p": "Orion"},
        model=ModelSpec(alias="copy"),
    )


def _route_in_a_stage_span(server: ProviderServer, tracer: OtelTracer) -> RouteResult:
    config = parse_routing(ROUTING.format(url=server.url), ".yaml")

    async def go() -> RouteResult:
        adapters = build_adapters(config, {"primary": SecretStr(KEY)}, OfflineProvider())
        router = ModelRouter(
            config,
            adapters,
            BudgetGuard(config.budgets, MemorySpendBook()),
            ProviderMetrics.build(CollectorRegistry()),
        )
        try:
            with span(tracer, "generate", parse_traceparent(PARENT), kind=CONSUMER):
                return await router.route(_request())
        finally:
            await close_adapters(adapters)

    return asyncio.run(go())


def test_each_call_is_a_genai_span_under_the_stage_span(
    server: ProviderServer, collector: OtlpReceiver
) -> None:
    server.script(
        "POST", "/v1/chat/completions", [Reply(status=500, json=openai_error("down", "x"))]
    )
    server.handle(
        "POST",
        "/v1/chat/completions",
        lambda body: Reply(json=openai_chat_response("ok", prompt_tokens=12, completion_tokens=34)),
    )
    tracer = OtelTracer(collector.endpoint, "assetline-unit")
    result = _route_in_a_stage_span(server, tracer)
    assert result.generated is not None
    assert tracer.flush()
    spans = collector.wait_for(lambda got: len(got) >= 3, timeout=10)
    stage = next(s for s in spans if s.name == "generate")
    calls: list[ReceivedSpan] = [s for s in spans if s.name == "chat gpt-4o-mini-2024-07-18"]
    assert len(calls) == 2  # the 500, then the retry that answered
    failed, served = calls
    for call in calls:
        assert call.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
        assert call.parent_span_id == stage.span_id
        assert call.attributes["gen_ai.operation.name"] == "chat"
        assert call.attributes["gen_ai.provider.name"] == "openai"
        assert call.attributes["gen_ai.request.model"] == "gpt-4o-mini-2024-07-18"
        assert call.attributes["gen_ai.request.max_tokens"] == 100
        assert call.attributes["assetline.provider"] == "primary"
    assert failed.attributes["error.type"] == "provider.unavailable"
    assert failed.status_code == STATUS_ERROR
    assert "gen_ai.response.model" not in failed.attributes
    assert served.attributes["gen_ai.usage.input_tokens"] == 12
    assert served.attributes["gen_ai.usage.output_tokens"] == 34
    assert served.attributes["gen_ai.response.model"] == "gpt-4o-mini-2024-07-18"
    assert "error.type" not in served.attributes
    for received in spans:
        text = repr(received.attributes)
        assert KEY not in text
        assert "Orion" not in text  # no prompt text
        assert "Secret launch" not in text


def test_operation_and_provider_names_follow_the_convention() -> None:
    image = ProviderCall(request=_request(AssetKind.IMAGE), prompt="p", model="gpt-image-1")
    text = ProviderCall(request=_request(), prompt="p", model="m")
    assert operation_of(image) == "generate_content"
    assert operation_of(text) == "chat"
    assert provider_name("openai") == "openai"
    assert provider_name("anthropic") == "anthropic"
    assert provider_name("offline") == "assetline.offline"
    assert provider_name("http_image") == "assetline.http_image"
