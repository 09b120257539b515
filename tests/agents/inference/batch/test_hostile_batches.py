"""Batch APIs that misbehave: a scriptable server (tests/support/provider_server.py) answers
what no real API should, and the clients and collector must stay bounded, quiet about keys,
and on their own origin."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agents.inference.batch import BatchCollector, BatchItem, BatchStatus, OpenAIBatchClient
from agents.inference.providers.base import Generated, ProviderCall, ProviderError
from agents.inference.providers.openai import OpenAIConfig
from agents.inference.routing.config import BatchRung
from schemas.records import AssetKind, GenerationRequest
from tests.support.provider_server import (
    ProviderServer,
    Reply,
    openai_chat_response,
    openai_error,
    provider_server,
)

KEY = "sk-hostile-batch-key-42"


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with provider_server() as started:
        yield started


def call(n: int = 0) -> ProviderCall:
    request = GenerationRequest(
        request_id=f"req-{n}",
        idempotency_key=f"k-{n}",
        tenant="acme",
        campaign_id="c1",
        kind=AssetKind.TEXT,
        prompt_template="ad",
    )
    return ProviderCall(request=request, prompt="ad", model="m")


def client(server: ProviderServer, max_bytes: int = 1024 * 1024) -> OpenAIBatchClient:
    config = OpenAIConfig(base_url=f"{server.url}/v1", max_response_bytes=max_bytes)
    return OpenAIBatchClient("oai", config, KEY, timeout_s=5)


def run(body: Any) -> Any:
    return asyncio.run(body)


def line(custom_id: str, content: str = "ok") -> bytes:
    response = {"status_code": 200, "body": openai_chat_response(content)}
    return json.dumps({"custom_id": custom_id, "response": response, "error": None}).encode()


def test_an_id_that_would_leave_the_api_path_is_refused(server: ProviderServer) -> None:
    server.script("POST", "/v1/files", [Reply(json={"id": "../../admin"})])

    async def go() -> None:
        c = client(server)
        try:
            await c.submit([BatchItem("a", call())])
        finally:
            await c.aclose()

    with pytest.raises(ProviderError, match="no usable 'id'"):
        run(go())
    assert server.requests_to("/v1/batches") == []


def test_an_output_file_id_that_would_leave_the_api_path_is_refused(
    server: ProviderServer,
) -> None:
    server.script(
        "GET",
        "/v1/batches/batch_1",
        [Reply(json={"id": "batch_1", "status": "completed", "output_file_id": "x/../../y"})],
    )

    async def go() -> BatchStatus:
        c = client(server)
        try:
            return await c.status("batch_1")
        finally:
            await c.aclose()

    with pytest.raises(ProviderError, match="output_file_id"):
        run(go())


def test_a_key_echoed_in_an_error_never_reaches_the_message(server: ProviderServer) -> None:
    server.script("POST", "/v1/files", [Reply(status=401, json=openai_error(f"bad key {KEY}"))])

    async def go() -> None:
        c = client(server)
        try:
            await c.submit([BatchItem("a", call())])
        finally:
            await c.aclose()

    with pytest.raises(ProviderError) as caught:
        run(go())
    assert caught.value.code == "provider.auth"
    assert KEY not in str(caught.value)


def test_results_above_the_size_cap_are_refused(server: ProviderServer) -> None:
    server.script("GET", "/v1/files/file-out/content", [Reply(body=b"x" * 5000)])

    async def go() -> Any:
        c = client(server, max_bytes=1000)
        try:
            status = BatchStatus("batch_1", "ended", "completed", output="file-out")
            return await c.results(status, {"a": call()})
        finally:
            await c.aclose()

    with pytest.raises(ProviderError) as caught:
        run(go())
    assert caught.value.code == "provider.too_large"


def test_results_for_calls_not_asked_are_ignored(server: ProviderServer) -> None:
    body = line("a", "mine") + b"\n" + line("zzz", "not mine") + b"\n"
    server.script("GET", "/v1/files/file-out/content", [Reply(body=body)])

    async def go() -> dict[str, Generated | ProviderError]:
        c = client(server)
        try:
            status = BatchStatus("batch_1", "ended", "completed", output="file-out")
            return await c.results(status, {"a": call()})
        finally:
            await c.aclose()

    results = run(go())
    assert list(results) == ["a"]
    served = results["a"]
    assert isinstance(served, Generated)
    assert served.data == b"mine"


def test_polls_that_fail_for_a_while_are_retried(server: ProviderServer) -> None:
    server.script("POST", "/v1/files", [Reply(json={"id": "file-in"})])
    server.script("POST", "/v1/batches", [Reply(json={"id": "batch_1", "status": "validating"})])
    ended = {"id": "batch_1", "status": "completed", "output_file_id": "file-out"}
    server.script(
        "GET",
        "/v1/batches/batch_1",
        [Reply(status=503, json=openai_error("busy")), Reply(status=502), Reply(json=ended)],
    )

    def results(_body: Any) -> Reply:
        (item,) = [r for r in server.requests_to("/v1/files") if r.method == "POST"]
        custom_id = item.body.split(b'"custom_id":"', 1)[1].split(b'"', 1)[0].decode()
        return Reply(body=line(custom_id, "after three polls"))

    server.handle("GET", "/v1/files/file-out/content", results)

    async def go() -> Generated | ProviderError:
        c = client(server)
        collector = BatchCollector(BatchRung(provider="oai", model="m", max_size=1, poll_s=0.01), c)
        try:
            return await collector.run(call(), time.time() + 60)
        finally:
            await collector.aclose()
            await c.aclose()

    outcome = run(go())
    assert isinstance(outcome, Generated)
    assert outcome.data == b"after three polls"
    assert len(server.requests_to("/v1/batches/batch_1")) == 3


def test_a_poll_refused_for_good_fails_the_calls_at_once(server: ProviderServer) -> None:
    server.script("POST", "/v1/files", [Reply(json={"id": "file-in"})])
    server.script("POST", "/v1/batches", [Reply(json={"id": "batch_1"})])
    server.script("GET", "/v1/batches/batch_1", [Reply(status=404, json=openai_error("gone"))])

    async def go() -> Generated | ProviderError:
        c = client(server)
        collector = BatchCollector(BatchRung(provider="oai", model="m", max_size=1, poll_s=0.01), c)
        try:
            return await collector.run(call(), time.time() + 60)
        finally:
            await collector.aclose()
            await c.aclose()

    outcome = run(go())
    assert isinstance(outcome, ProviderError)
    assert outcome.code == "provider.bad_request"
    assert len(server.requests_to("/v1/batches/batch_1")) == 1
