"""Spans of a real line reach a real OTLP/HTTP receiver: one trace per request, GenAI attributes.

A worker with ``ASSETLINE_OTEL_ENDPOINT`` pointing at an OTLP/HTTP receiver this test runs on
127.0.0.1 (protobuf decoded with opentelemetry-proto), generating through an OpenAI-shaped
server on 127.0.0.1: each request's generate, validate and deliver spans and its provider call
span share the producer's trace id, chain parent to child, and the call carries the GenAI
semantic-convention attributes; no prompt text is in any span.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("opentelemetry.proto")

from assetline.client import LineClient, await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, CompletionStatus, Constraints, GenerationRequest
from streams.settings import Settings
from streams.topics import ensure_topics, line_topic_specs
from tests.support.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support.provider_server import (
    ProviderServer,
    Reply,
    local_routing_file,
    openai_chat_response,
    provider_server,
)

pytestmark = pytest.mark.integration

StartWorker = Callable[[Settings], WorkerProcess]
SPAN_KIND_CLIENT = 3
SPAN_KIND_CONSUMER = 5
PROMPT_WORD = "Zanzibarish"  # in every prompt; must be in no span


@pytest.fixture
def collector() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver().start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def model_server() -> Iterator[ProviderServer]:
    with provider_server() as server:
        answer = openai_chat_response(
            "Fresh spring copy.", model="m-1-2026-01-01", prompt_tokens=21, completion_tokens=7
        )
        server.handle("POST", "/v1/chat/completions", lambda body: Reply(json=answer))
        yield server


def _trace_spans(spans: list[ReceivedSpan], trace_id: str) -> dict[str, ReceivedSpan]:
    return {s.name: s for s in spans if s.trace_id == trace_id}


def test_stage_and_provider_spans_arrive_as_one_trace_with_genai_attributes(
    line_settings: Settings,
    start_worker: StartWorker,
    collector: OtlpReceiver,
    model_server: ProviderServer,
    tmp_path: Path,
) -> None:
    routing = local_routing_file(
        tmp_path / "routing.yaml", f"{model_server.url}/v1", model="m", timeout_s=10, max_retries=0
    )
    settings = line_settings.model_copy(
        update={
            "routing_file": routing,
            "otel_endpoint": collector.endpoint,
            "otel_service_name": "assetline-it",
        }
    )
    run = uuid.uuid4().hex[:8]
    requests = [
        GenerationRequest(
            request_id=f"{run}-{i}",
            idempotency_key=f"{run}-{i}",
            tenant="acme",
            campaign_id="otel",
            kind=AssetKind.TEXT,
            prompt_template=f"{PROMPT_WORD} headline ${{n}}",
            variables={"n": str(i)},
            constraints=Constraints(max_chars=200),
        )
        for i in range(3)
    ]
    producer = {r.request_id: (uuid.uuid4().hex, uuid.uuid4().hex[:16]) for r in requests}

    async def submit() -> None:
        await ensure_topics(settings, line_topic_specs(settings))
        async with LineClient(settings) as client:
            await client.submit(
                requests,
                traceparent_of=lambda r: "00-{}-{}-01".format(*producer[r.request_id]),
            )

    asyncio.run(submit())
    worker = start_worker(settings)
    ids = [r.request_id for r in requests]
    done = asyncio.run(await_completions(settings, ids, timeout=90))
    assert set(done) == set(ids), worker.log_tail()
    assert {events[-1].status for events in done.values()} == {CompletionStatus.DELIVERED}

    wanted = {"generate", "validate", "deliver", "chat m-1"}

    def complete(spans: list[ReceivedSpan]) -> bool:
        return all(wanted <= set(_trace_spans(spans, t)) for t, _ in producer.values())

    spans = collector.wait_for(complete, timeout=30)
    assert complete(spans), (sorted({s.name for s in spans}), worker.log_tail())
    for trace_id, producer_span in producer.values():
        mine = _trace_spans(spans, trace_id)
        generate, validate, deliver = mine["generate"], mine["validate"], mine["deliver"]
        call = mine["chat m-1"]
        # One trace, chained hop by hop through the records' traceparent headers.
        assert generate.parent_span_id == producer_span
        assert call.parent_span_id == generate.span_id
        assert validate.parent_span_id == generate.span_id
        assert deliver.parent_span_id == validate.span_id
        assert {generate.kind, validate.kind, deliver.kind} == {SPAN_KIND_CONSUMER}
        assert call.kind == SPAN_KIND_CLIENT
        assert call.attributes["gen_ai.operation.name"] == "chat"
        assert call.attributes["gen_ai.provider.name"] == "openai"
        assert call.attributes["gen_ai.request.model"] == "m-1"
        assert call.attributes["gen_ai.request.max_tokens"] == 64
        assert call.attributes["gen_ai.response.model"] == "m-1-2026-01-01"
        assert call.attributes["gen_ai.usage.input_tokens"] == 21
        assert call.attributes["gen_ai.usage.output_tokens"] == 7
        assert call.attributes["assetline.provider"] == "local"
        assert generate.attributes["messaging.system"] == "kafka"
        assert generate.attributes["assetline.request_id"] in ids
        assert generate.service_name == "assetline-it"
    for span in spans:
        assert not any(PROMPT_WORD in str(v) for v in span.attributes.values()), span
    assert set(collector.content_types) == {"application/x-protobuf"}
