"""The batch collector against the local batch server: size and age bounds, results handed
to each caller, and the outcomes that send a request back to the synchronous chain."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agents.inference.batch import BatchCollector, OpenAIBatchClient
from agents.inference.providers.base import Generated, ProviderCall, ProviderError
from agents.inference.providers.openai import OpenAIConfig
from agents.inference.routing.config import BatchRung
from schemas.records import AssetKind, GenerationRequest
from tests.support.batch_server import BatchServer, batch_server

FAR = 3600.0  # give-up times far beyond any test


@pytest.fixture
def server() -> Iterator[BatchServer]:
    with batch_server() as started:
        yield started


def call(n: int) -> ProviderCall:
    request = GenerationRequest(
        request_id=f"req-{n}",
        idempotency_key=f"k-{n}",
        tenant="acme",
        campaign_id="c1",
        kind=AssetKind.TEXT,
        prompt_template=f"ad {n}",
    )
    return ProviderCall(request=request, prompt=f"ad {n}", model="gpt-4o-mini")


def collect(
    server: BatchServer, count: int, *, give_up_in: float = FAR, **rung: Any
) -> tuple[list[Generated | ProviderError], BatchCollector]:
    settings: dict[str, Any] = {"max_size": 100, "max_age_s": 0.02, "poll_s": 0.01, **rung}

    async def go() -> tuple[list[Generated | ProviderError], BatchCollector]:
        client = OpenAIBatchClient("oai", OpenAIConfig(base_url=f"{server.url}/v1"), "k")
        collector = BatchCollector(BatchRung(provider="oai", model="m", **settings), client)
        try:
            deadline = time.time() + give_up_in
            outcomes = await asyncio.gather(
                *(collector.run(call(n), deadline) for n in range(count))
            )
            return list(outcomes), collector
        finally:
            await collector.aclose()
            await client.aclose()

    return asyncio.run(go())


def codes(outcomes: list[Generated | ProviderError]) -> list[str | None]:
    return [None if isinstance(o, Generated) else o.code for o in outcomes]


def test_each_caller_gets_its_own_answer(server: BatchServer) -> None:
    outcomes, _ = collect(server, 4)
    assert [o.data for o in outcomes if isinstance(o, Generated)] == [
        f"copy for: ad {n}".encode() for n in range(4)
    ]


def test_size_bound_splits_the_calls_into_full_batches(server: BatchServer) -> None:
    outcomes, collector = collect(server, 7, max_size=3, max_age_s=0.05)
    assert codes(outcomes) == [None] * 7
    assert sorted(server.batch_sizes) == [1, 3, 3]
    assert collector.stats.served == 7


def test_age_bound_submits_a_partial_batch(server: BatchServer) -> None:
    outcomes, collector = collect(server, 2, max_size=500, max_age_s=0.02)
    assert codes(outcomes) == [None, None]
    assert server.batch_sizes == [2]
    assert collector.stats.sizes == [2]


def test_a_batch_still_running_at_give_up_time_sends_its_calls_back_and_is_cancelled(
    server: BatchServer,
) -> None:
    server.hold = True
    outcomes, collector = collect(server, 3, give_up_in=0.15)
    assert codes(outcomes) == ["batch.late"] * 3
    assert collector.stats.late == 3
    # cancelled once nobody waits (or, at the latest, when the collector closes)
    assert set(server.cancels) == set(server.batches)
    assert len(server.batches) == 1


def test_answers_after_a_caller_gave_up_are_counted_not_served(server: BatchServer) -> None:
    server.hold = True

    async def go() -> tuple[list[Generated | ProviderError], BatchCollector]:
        client = OpenAIBatchClient("oai", OpenAIConfig(base_url=f"{server.url}/v1"), "k")
        price = {"input_per_1k": 1.0, "output_per_1k": 1.0}
        rung = BatchRung(provider="oai", model="m", max_size=2, poll_s=0.01, price=price)
        collector = BatchCollector(rung, client)
        try:
            early = asyncio.create_task(collector.run(call(0), time.time() + 0.1))
            patient = asyncio.create_task(collector.run(call(1), time.time() + FAR))
            first = await early
            server.release()
            return [first, await patient], collector
        finally:
            await collector.aclose()
            await client.aclose()

    (first, second), collector = asyncio.run(go())
    assert isinstance(first, ProviderError)
    assert first.code == "batch.late"
    assert isinstance(second, Generated)
    assert collector.stats.late_cost == pytest.approx((100 + 200) / 1000)


def test_closing_cancels_the_batches_still_running_and_their_callers(
    server: BatchServer,
) -> None:
    server.hold = True

    async def go() -> tuple[bool, bool]:
        client = OpenAIBatchClient("oai", OpenAIConfig(base_url=f"{server.url}/v1"), "k")
        rung = BatchRung(provider="oai", model="m", max_size=2, max_age_s=FAR, poll_s=0.01)
        collector = BatchCollector(rung, client)
        submitted = [asyncio.create_task(collector.run(call(n), time.time() + FAR)) for n in (0, 1)]
        while not server.polls:  # noqa: ASYNC110 - the server runs in another thread
            await asyncio.sleep(0.01)
        gathering = asyncio.create_task(collector.run(call(2), time.time() + FAR))
        await asyncio.sleep(0)
        await collector.aclose()
        await client.aclose()
        late = asyncio.create_task(collector.run(call(3), time.time() + FAR))
        outcomes = await asyncio.gather(*submitted, gathering, late, return_exceptions=True)
        # cancelled, not answered: a stopping worker must not send them to the chain
        return all(isinstance(o, asyncio.CancelledError) for o in outcomes), len(outcomes) == 4

    assert asyncio.run(go()) == (True, True)
    assert server.cancels == list(server.batches)
    assert server.batch_sizes == [2]


def test_failed_batch_fails_every_call(server: BatchServer) -> None:
    server.terminal = "failed"
    outcomes, _ = collect(server, 3)
    assert codes(outcomes) == ["batch.failed"] * 3
    assert "validation" in str(outcomes[0])


def test_expired_batch_fails_every_call_as_expired(server: BatchServer) -> None:
    server.terminal = "expired"
    outcomes, _ = collect(server, 2)
    assert codes(outcomes) == ["provider.batch_error"] * 2
    assert all("batch_expired" in str(o) for o in outcomes)


def test_partial_batch_serves_what_it_has_and_names_what_it_lacks(server: BatchServer) -> None:
    server.errored_every, server.missing_every = 3, 4
    outcomes, collector = collect(server, 5)
    # calls 1..5: the 3rd errors, the 4th is left out of the results
    assert codes(outcomes) == [None, None, "provider.bad_request", "batch.missing", None]
    assert collector.stats.served == 3
    assert collector.stats.failed == 2


def test_batch_api_unreachable_fails_the_calls_with_its_code() -> None:
    with batch_server() as gone:
        pass
    outcomes, _ = collect(gone, 2)
    assert codes(outcomes) == ["provider.connect"] * 2


def test_a_caller_that_stops_waiting_leaves_the_batch(server: BatchServer) -> None:
    async def go() -> list[Generated | ProviderError]:
        client = OpenAIBatchClient("oai", OpenAIConfig(base_url=f"{server.url}/v1"), "k")
        rung = BatchRung(provider="oai", model="m", max_size=3, max_age_s=FAR, poll_s=0.01)
        collector = BatchCollector(rung, client)
        try:
            gone = asyncio.create_task(collector.run(call(0), time.time() + FAR))
            await asyncio.sleep(0)
            gone.cancel()
            stay = [collector.run(call(n), time.time() + FAR) for n in (1, 2, 3)]
            return list(await asyncio.gather(*stay))
        finally:
            await collector.aclose()
            await client.aclose()

    outcomes = asyncio.run(go())
    assert codes(outcomes) == [None] * 3
    assert server.batch_sizes == [3]
