"""An HTTP transport that spreads calls over several small connection pools.

httpcore 1.0.9's pool re-scans every connection (``is_idle``/``has_expired``, each a socket
attribute lookup) for every queued request on every request and every response closed: work
that grows with connections x calls (encode/httpcore#1035, still open). With the hundreds of
calls in flight a slow provider needs (issue 16), one pool of 256 busy connections spent 77% of
a worker's CPU there (py-spy, ``python -m bench.providers``): the worker made 13 calls a second
while the provider could answer 128. Split into shards of a few dozen connections, the same scan
is short; a call goes to the shard with the fewest calls in flight, so idle keep-alive
connections stay in a few shards and are found again.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable

import httpx

DEFAULT_SHARDS = 16


class ShardedTransport(httpx.AsyncBaseTransport):
    """``shards`` httpx transports sharing the limits between them, busiest last."""

    def __init__(
        self,
        *,
        shards: int = DEFAULT_SHARDS,
        max_connections: int,
        max_keepalive_connections: int,
        keepalive_expiry_s: float,
    ) -> None:
        if shards < 1:
            raise ValueError(f"shards must be at least 1, got {shards}")
        per_shard = httpx.Limits(
            max_connections=max(1, math.ceil(max_connections / shards)),
            max_keepalive_connections=max(1, math.ceil(max_keepalive_connections / shards)),
            keepalive_expiry=keepalive_expiry_s,
        )
        self.limits = per_shard
        # One TLS context for all: building one loads the CA bundle (about 0.15 s each).
        tls = httpx.create_ssl_context(trust_env=False)
        self._shards = [
            httpx.AsyncHTTPTransport(verify=tls, limits=per_shard, trust_env=False)
            for _ in range(shards)
        ]
        self._busy = [0] * shards

    @property
    def busy(self) -> tuple[int, ...]:
        """Calls in flight per shard (a call counts until its response is closed)."""
        return tuple(self._busy)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        index = min(range(len(self._busy)), key=self._busy.__getitem__)
        self._busy[index] += 1
        try:
            response = await self._shards[index].handle_async_request(request)
        except BaseException:
            self._busy[index] -= 1
            raise
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _Released(response.stream, lambda: self._release(index))
        return response

    def _release(self, index: int) -> None:
        self._busy[index] -= 1

    async def aclose(self) -> None:
        for shard in self._shards:
            await shard.aclose()


class _Released(httpx.AsyncByteStream):
    """A response body that gives its shard's slot back once, when closed."""

    def __init__(self, stream: httpx.AsyncByteStream, release: Callable[[], None]) -> None:
        self._stream = stream
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            release, self._release = self._release, None
            if release is not None:
                release()
