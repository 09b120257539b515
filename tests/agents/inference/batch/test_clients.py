"""The batch API clients against a local server speaking both documented shapes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from agents.inference.batch._clients import (
    AnthropicBatchClient,
    BatchClient,
    BatchItem,
    BatchStatus,
    OpenAIBatchClient,
    upload_first,
)
from agents.inference.providers.anthropic import AnthropicConfig
from agents.inference.providers.base import Generated, ProviderCall, ProviderError
from agents.inference.providers.openai import OpenAIConfig
from schemas.records import AssetKind, GenerationRequest
from tests.support.batch_server import INPUT_TOKENS, OUTPUT_TOKENS, BatchServer, batch_server

KEY = "sk-batch-secret-123"


@pytest.fixture
def server() -> Iterator[BatchServer]:
    with batch_server() as started:
        yield started


def items(count: int, kind: AssetKind = AssetKind.TEXT) -> list[BatchItem]:
    out = []
    for n in range(count):
        request = GenerationRequest(
            request_id=f"req-{n}",
            idempotency_key=f"k-{n}",
            tenant="acme",
            campaign_id="c1",
            kind=kind,
            prompt_template=f"ad {n}",
        )
        call = ProviderCall(request=request, prompt=f"ad {n}", model="m-2024", max_output_tokens=50)
        out.append(BatchItem(f"r{n}", call))
    return out


def openai(server: BatchServer) -> OpenAIBatchClient:
    return OpenAIBatchClient("oai", OpenAIConfig(base_url=f"{server.url}/v1"), KEY, timeout_s=5)


def anthropic(server: BatchServer) -> AnthropicBatchClient:
    return AnthropicBatchClient("ant", AnthropicConfig(base_url=server.url), KEY, timeout_s=5)


CLIENTS = [openai, anthropic]


def run(
    server: BatchServer,
    make: Callable[[BatchServer], BatchClient],
    body: Callable[[BatchClient], Awaitable[Any]],
) -> Any:
    async def go() -> Any:
        client = make(server)
        try:
            return await body(client)
        finally:
            await client.aclose()

    return asyncio.run(go())


async def until_done(client: BatchClient, batch_id: str, polls: int = 200) -> BatchStatus:
    for _ in range(polls):
        status = await client.status(batch_id)
        if status.state != "running":
            return status
        await asyncio.sleep(0.01)
    raise AssertionError("batch never ended")


def submit_and_read(
    server: BatchServer, make: Callable[[BatchServer], BatchClient], count: int
) -> tuple[BatchStatus, dict[str, Generated | ProviderError]]:
    batch = items(count)

    async def body(client: BatchClient) -> Any:
        batch_id = await client.submit(batch)
        status = await until_done(client, batch_id)
        if status.state == "failed":
            return status, {}
        calls = {item.custom_id: item.call for item in batch}
        return status, await client.results(status, calls)

    result: tuple[BatchStatus, dict[str, Generated | ProviderError]] = run(server, make, body)
    return result


@pytest.mark.parametrize("make", CLIENTS)
def test_happy_batch_answers_every_call_like_the_sync_adapter(
    server: BatchServer, make: Callable[[BatchServer], BatchClient]
) -> None:
    status, results = submit_and_read(server, make, 5)
    assert status.state == "ended"
    assert sorted(results) == [f"r{n}" for n in range(5)]
    for n in range(5):
        generated = results[f"r{n}"]
        assert isinstance(generated, Generated)
        assert generated.data == f"copy for: ad {n}".encode()
        assert generated.model_version == "m-2024"
        assert (generated.usage.input_tokens, generated.usage.output_tokens) == (
            INPUT_TOKENS,
            OUTPUT_TOKENS,
        )
    assert server.batch_sizes == [5]
    assert server.seen_auth <= {f"Bearer {KEY}", KEY}


def test_openai_input_file_has_the_documented_lines(server: BatchServer) -> None:
    submit_and_read(server, openai, 2)
    (batch,) = server.batches.values()
    assert [custom_id for custom_id, _ in batch.calls] == ["r0", "r1"]
    body = batch.calls[0][1]
    assert body["model"] == "m-2024"
    assert body["max_tokens"] == 50
    assert body["messages"][-1] == {"role": "user", "content": "ad 0"}


@pytest.mark.parametrize("make", CLIENTS)
def test_slow_batch_stays_running_until_it_ends(
    server: BatchServer, make: Callable[[BatchServer], BatchClient]
) -> None:
    server.hold = True

    async def body(client: BatchClient) -> Any:
        batch_id = await client.submit(items(2))
        first = await client.status(batch_id)
        server.release()
        return first, await until_done(client, batch_id)

    first, last = run(server, make, body)
    assert first.state == "running"
    assert first.status == "in_progress"
    assert last.state == "ended"


@pytest.mark.parametrize("make", CLIENTS)
def test_partial_batch_reports_errored_calls_and_omits_missing_ones(
    server: BatchServer, make: Callable[[BatchServer], BatchClient]
) -> None:
    server.errored_every, server.missing_every = 3, 4
    _, results = submit_and_read(server, make, 8)
    # calls 1..8: 3 and 6 errored, 4 and 8 missing
    assert sorted(results) == ["r0", "r1", "r2", "r4", "r5", "r6"]
    errored = {key for key, value in results.items() if isinstance(value, ProviderError)}
    assert errored == {"r2", "r5"}
    for key in errored:
        error = results[key]
        assert isinstance(error, ProviderError)
        assert error.code in ("provider.batch_error", "provider.bad_request")
        assert "bad params" in error.message
        assert KEY not in error.message


def test_openai_failed_batch_says_why(server: BatchServer) -> None:
    server.terminal = "failed"
    status, _ = submit_and_read(server, openai, 2)
    assert status.state == "failed"
    assert status.status == "failed"
    assert "validation" in status.detail


def test_anthropic_refused_batch_is_a_retryable_error(server: BatchServer) -> None:
    server.terminal = "failed"
    with pytest.raises(ProviderError) as caught:
        submit_and_read(server, anthropic, 2)
    assert caught.value.code == "provider.unavailable"
    assert caught.value.retryable
    assert KEY not in str(caught.value)


@pytest.mark.parametrize("make", CLIENTS)
def test_expired_batch_ends_with_every_call_expired(
    server: BatchServer, make: Callable[[BatchServer], BatchClient]
) -> None:
    server.terminal = "expired"
    status, results = submit_and_read(server, make, 3)
    assert status.state == "ended"
    assert status.status in ("expired", "ended")
    assert len(results) == 3
    for value in results.values():
        assert isinstance(value, ProviderError)
        assert "expired" in value.code or "expired" in value.message


@pytest.mark.parametrize("make", CLIENTS)
def test_cancel_reaches_the_server(
    server: BatchServer, make: Callable[[BatchServer], BatchClient]
) -> None:
    server.hold = True

    async def body(client: BatchClient) -> BatchStatus:
        batch_id = await client.submit(items(1))
        await client.cancel(batch_id)
        return await until_done(client, batch_id)

    status = run(server, make, body)
    assert server.cancels == [status.batch_id]
    assert status.state == "ended"


@pytest.mark.parametrize("make", CLIENTS)
def test_image_calls_and_bad_custom_ids_are_refused_before_sending(
    server: BatchServer, make: Callable[[BatchServer], BatchClient]
) -> None:
    async def image(client: BatchClient) -> Any:
        return await client.submit(items(1, AssetKind.IMAGE))

    with pytest.raises(ProviderError):
        run(server, make, image)
    bad = [BatchItem("has space", items(1)[0].call)]

    async def spaced(client: BatchClient) -> Any:
        return await client.submit(bad)

    with pytest.raises(ValueError, match="custom_id"):
        run(server, make, spaced)
    assert server.batches == {}


def test_anthropic_results_url_elsewhere_is_not_fetched(server: BatchServer) -> None:
    async def body(client: BatchClient) -> Any:
        status = BatchStatus("msgbatch_1", "ended", "ended", output="http://127.0.0.2:1/x")
        return await client.results(status, {})

    with pytest.raises(ProviderError, match="origin"):
        run(server, anthropic, body)


def test_unreachable_server_is_a_retryable_connect_error() -> None:
    with batch_server() as gone:
        url = gone.url
    client = OpenAIBatchClient("oai", OpenAIConfig(base_url=f"{url}/v1"), KEY, timeout_s=2)

    async def body() -> Any:
        try:
            return await client.submit(items(1))
        finally:
            await client.aclose()

    with pytest.raises(ProviderError) as caught:
        asyncio.run(body())
    assert caught.value.code == "provider.connect"
    assert caught.value.retryable


@pytest.mark.parametrize("status", [504, 500])
@pytest.mark.parametrize("newer", [0, 150])
def test_openai_create_whose_answer_is_lost_is_found_by_its_input_file(
    server: BatchServer, status: int, newer: int
) -> None:
    """The batch runs and is billed although the create failed: follow it, never pay twice
    (the collector would send its calls to the synchronous price). ``newer``: batches others
    made right after it, so the lookup (newest first, 100 a page) finds it on page two."""
    server.add_listed(30)
    server.others_after_create = newer
    server.create_status = status  # made, then the answer is lost

    async def body(client: BatchClient) -> Any:
        found = await client.submit(items(3))
        server.create_status = 0
        return found, await until_done(client, found)

    found, ended = run(server, openai, body)
    ours = [b for b in server.batches.values() if b.calls]
    assert len(ours) == 1  # not created twice
    assert found == ours[0].batch_id
    assert ended.state == "ended"


def test_openai_create_that_made_nothing_still_fails(server: BatchServer) -> None:
    server.add_listed(3)
    server.create_status, server.create_makes = 503, False

    async def body(client: BatchClient) -> Any:
        with pytest.raises(ProviderError) as caught:
            await client.submit(items(2))
        return caught.value

    error = run(server, openai, body)
    assert error.code == "provider.unavailable"
    assert not [b for b in server.batches.values() if b.calls]


def test_openai_create_refused_is_not_looked_up(server: BatchServer) -> None:
    """A 4xx (here 429) made nothing: no lookup, the collector's refusal handling decides."""
    server.create_status = 429
    lists: list[str] = []

    async def body(client: BatchClient) -> Any:
        assert isinstance(client, OpenAIBatchClient)
        find = client.find

        async def counting(input_file_id: str) -> str | None:
            lists.append(input_file_id)
            return await find(input_file_id)

        client.find = counting  # type: ignore[method-assign]
        with pytest.raises(ProviderError) as caught:
            await client.submit(items(1))
        return caught.value

    error = run(server, openai, body)
    assert error.code == "provider.rate_limited"
    assert lists == []


def test_openai_uploads_and_creates_apart_and_finds_the_batch_by_its_file(
    server: BatchServer,
) -> None:
    """The two steps submit is made of: the upload makes a file and no batch; the create
    makes the batch on that file, which the lookup finds by it."""

    async def body(client: BatchClient) -> Any:
        staged = upload_first(client)
        assert staged is not None
        file_id = await staged.upload(items(2))
        before = await staged.find(file_id)
        after_upload = dict(server.batches)
        batch_id = await staged.create(file_id)
        return file_id, before, after_upload, batch_id, await staged.find(file_id)

    file_id, before, after_upload, batch_id, found = run(server, openai, body)
    assert before is None
    assert after_upload == {}
    assert found == batch_id
    assert server.batches[batch_id].input_file_id == file_id
    assert server.batch_sizes == [2]
    assert server.requests[:2] == [("POST", "/v1/files"), ("GET", "/v1/batches")]
    assert (server.uploads, server.creates) == (1, 1)


def test_anthropic_has_no_separate_upload(server: BatchServer) -> None:
    """Its create carries the calls and its batches hold nothing to find them by."""

    async def body(client: BatchClient) -> Any:
        return upload_first(client)

    assert run(server, anthropic, body) is None
