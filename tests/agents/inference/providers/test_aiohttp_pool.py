"""The provider clients' transport (httpx on aiohttp) against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
import pytest
from aiohttp import web

from agents.inference.providers._aiohttp_pool import ProviderTransport
from agents.inference.providers._http import build_client, send
from agents.inference.providers.base import ProviderError


class Server:
    def __init__(self) -> None:
        self.in_flight = 0
        self.most = 0
        self.peers: set[tuple[str, int]] = set()
        self.cookies: list[str] = []
        self.release = asyncio.Event()

    async def slow(self, request: web.Request) -> web.Response:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        if peer:
            self.peers.add(tuple(peer[:2]))
        self.cookies.append(request.headers.get("Cookie", ""))
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await self.release.wait()
        finally:
            self.in_flight -= 1
        response = web.json_response({"ok": True})
        response.set_cookie("session", "from-the-provider")
        return response

    async def cut(self, request: web.Request) -> web.StreamResponse:
        """Promises 1,000 bytes, sends 10, then drops the connection."""
        response = web.StreamResponse(headers={"Content-Length": "1000"})
        await response.prepare(request)
        await response.write(b"0123456789")
        assert request.transport is not None
        request.transport.close()
        return response


@asynccontextmanager
async def serving() -> AsyncIterator[tuple[Server, str]]:
    state = Server()
    app = web.Application()
    app.router.add_get("/slow", state.slow)
    app.router.add_get("/cut", state.cut)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield state, f"http://127.0.0.1:{port}"
    finally:
        state.release.set()  # no handler left waiting: the runner's cleanup waits for them
        await runner.cleanup()


def with_server(body: Callable[[Server, str], Awaitable[None]]) -> None:
    async def run() -> None:
        async with serving() as (state, base):
            await body(state, base)

    asyncio.run(run())


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("timed out")


def test_hundreds_of_calls_are_in_flight_at_once_and_connections_are_reused() -> None:
    """A slow provider needs hundreds of calls in flight: the pool must not cap them at 100."""

    async def body(state: Server, base: str) -> None:
        async with build_client() as client:
            assert isinstance(client._transport, ProviderTransport)
            calls = [asyncio.create_task(client.get(f"{base}/slow")) for _ in range(300)]
            await until(lambda: state.in_flight == 300)
            state.release.set()
            answers = await asyncio.gather(*calls)
            assert {a.status_code for a in answers} == {200}
            opened = len(state.peers)
            assert opened == 300
            # a second wave reuses the kept-alive connections instead of opening new ones
            again = await asyncio.gather(*(client.get(f"{base}/slow") for _ in range(50)))
            assert {a.status_code for a in again} == {200}
            assert len(state.peers) == opened

    with_server(body)


def test_a_provider_cookie_is_never_sent_back() -> None:
    async def body(state: Server, base: str) -> None:
        state.release.set()
        async with build_client() as client:
            first = await client.get(f"{base}/slow")
            assert "session" in first.headers.get("set-cookie", "")
            await client.get(f"{base}/slow")
        assert state.cookies == ["", ""]

    with_server(body)


def test_a_cancelled_call_frees_its_connection() -> None:
    async def body(state: Server, base: str) -> None:
        async with build_client(max_connections=1) as client:
            call = asyncio.create_task(client.get(f"{base}/slow"))
            await until(lambda: state.in_flight == 1)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            state.release.set()
            # the only connection is free again: the next call gets it within its timeout
            answer = await client.get(f"{base}/slow", timeout=5.0)
            assert answer.status_code == 200

    with_server(body)


def test_a_body_cut_short_is_an_httpx_read_error_and_a_connect_code() -> None:
    """Errors keep their meaning: a dropped connection is not a timeout (the adaptive limit
    takes timeouts as congestion), and no aiohttp exception escapes the adapters."""

    async def body(state: Server, base: str) -> None:
        async with build_client() as client:
            with pytest.raises(httpx.ReadError):
                await client.get(f"{base}/cut")  # reads the whole body
            with pytest.raises(ProviderError) as caught:
                await send(client, "GET", f"{base}/cut", provider="p", timeout_s=5.0)
            assert (caught.value.code, caught.value.retryable) == ("provider.connect", True)
            assert "127.0.0.1" in str(caught.value)  # the host, never aiohttp's text

    with_server(body)


def test_a_refused_connection_is_a_connect_error_not_a_timeout() -> None:
    async def run() -> None:
        async with build_client() as client:
            with pytest.raises(httpx.ConnectError):
                await client.get("http://127.0.0.1:1/refused")

    asyncio.run(run())
