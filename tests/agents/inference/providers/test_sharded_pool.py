"""The sharded transport against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from aiohttp import web

from agents.inference.providers._http import build_client
from agents.inference.providers._sharded_pool import ShardedTransport


class Server:
    def __init__(self) -> None:
        self.in_flight = 0
        self.peers: set[tuple[str, int]] = set()
        self.release = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.peers.add(tuple(peer[:2]))
        self.in_flight += 1
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        return web.json_response({"ok": True})


@asynccontextmanager
async def serving() -> AsyncIterator[tuple[Server, str]]:
    state = Server()
    app = web.Application()
    app.router.add_get("/slow", state.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield state, f"http://127.0.0.1:{port}/slow"
    finally:
        state.release.set()  # no handler left waiting: the runner's cleanup waits for them
        await runner.cleanup()


async def with_server(body: Callable[[Server, str], Awaitable[None]]) -> None:
    async with serving() as (state, url):
        await body(state, url)


def transport_of(client: httpx.AsyncClient) -> ShardedTransport:
    transport = client._transport
    assert isinstance(transport, ShardedTransport)
    return transport


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def test_calls_spread_over_shards_and_slots_come_back() -> None:
    asyncio.run(with_server(_test_calls_spread_over_shards_and_slots_come_back))


async def _test_calls_spread_over_shards_and_slots_come_back(state: Server, url: str) -> None:
    async with build_client() as client:
        transport = transport_of(client)
        calls = [asyncio.create_task(client.get(url)) for _ in range(64)]
        await until(lambda: state.in_flight == 64)
        busy = transport.busy
        assert sum(busy) == 64
        assert max(busy) - min(busy) <= 1  # 16 shards, 4 calls each
        state.release.set()
        answers = await asyncio.gather(*calls)
        assert {a.status_code for a in answers} == {200}
        assert transport.busy == (0,) * len(busy)
        # A second wave reuses the kept-alive connections instead of opening new ones.
        opened = len(state.peers)
        again = await asyncio.gather(*(client.get(url) for _ in range(16)))
        assert {a.status_code for a in again} == {200}
        assert len(state.peers) == opened


def test_a_cancelled_or_failed_call_gives_its_slot_back() -> None:
    asyncio.run(with_server(_test_a_cancelled_or_failed_call_gives_its_slot_back))


async def _test_a_cancelled_or_failed_call_gives_its_slot_back(state: Server, url: str) -> None:
    async with build_client() as client:
        transport = transport_of(client)
        call = asyncio.create_task(client.get(url))
        await until(lambda: state.in_flight == 1)
        assert sum(transport.busy) == 1
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert sum(transport.busy) == 0
        with pytest.raises(httpx.ConnectError):
            await client.get("http://127.0.0.1:1/refused")
        assert sum(transport.busy) == 0


def test_a_streamed_body_holds_its_slot_until_closed() -> None:
    asyncio.run(with_server(_test_a_streamed_body_holds_its_slot_until_closed))


async def _test_a_streamed_body_holds_its_slot_until_closed(state: Server, url: str) -> None:
    state.release.set()
    async with build_client() as client:
        transport = transport_of(client)
        async with client.stream("GET", url) as response:
            assert sum(transport.busy) == 1
            assert b"ok" in await response.aread()
        assert sum(transport.busy) == 0


def test_limits_are_shared_between_the_shards() -> None:
    transport = ShardedTransport(
        shards=16, max_connections=1024, max_keepalive_connections=256, keepalive_expiry_s=30
    )
    assert transport.limits.max_connections == 64
    assert transport.limits.max_keepalive_connections == 16
    with pytest.raises(ValueError, match="at least 1"):
        ShardedTransport(
            shards=0, max_connections=1, max_keepalive_connections=1, keepalive_expiry_s=1
        )
