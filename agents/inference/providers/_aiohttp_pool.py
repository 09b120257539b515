"""The provider clients' HTTP transport: httpx's API on aiohttp's connection pool.

The adapters speak httpx (requests, timeouts, streamed bodies, error classes), but httpx's own
transport (httpcore) costs a lot of CPU per call when hundreds are in flight: its pool re-scans
every connection for every queued call (encode/httpcore#1035, still open). Measured here against
a local server, 256 calls in flight, 4,000 calls: 2.0-2.6 ms of CPU per call through httpcore
(split over 16 pools to shorten that scan), 0.43-0.52 ms through aiohttp. At the 100+ calls a
second a slow provider allows, that is a fifth of a core. So the pool is aiohttp's (already
installed for Faust), behind ``httpx_aiohttp.AiohttpTransport`` (the transport the OpenAI SDK's
``DefaultAioHttpClient`` uses), with three corrections:

- **Errors keep their meaning.** The library maps every ``aiohttp.ClientConnectionError`` to
  ``httpx.ConnectTimeout``, so a refused or reset connection would read as a timeout (which
  the adaptive limit takes as congestion); and an aiohttp error it does not map (a header value
  with a newline) would escape as an aiohttp exception. :func:`_as_httpx` maps from the
  original exception: timeouts to httpx timeouts, connection failures to ``ConnectError`` /
  ``ReadError``, bad URLs to ``InvalidURL``, a bad header to ``LocalProtocolError``, the rest
  to ``TransportError``, never quoting the exception's text (it may hold the URL).
- **No cookies**: a provider's ``Set-Cookie`` is never sent back on other calls.
- **No environment**: proxies and CA bundles from the environment are ignored, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

__all__ = ["ProviderTransport"]


class ProviderTransport(AiohttpTransport):
    """One aiohttp connection pool of at most ``max_connections`` for httpx clients."""

    def __init__(self, *, max_connections: int, keepalive_expiry_s: float) -> None:
        limits = httpx.Limits(max_connections=max_connections, keepalive_expiry=keepalive_expiry_s)
        super().__init__(trust_env=False, limits=limits, client=self._session)

    def _session(self) -> aiohttp.ClientSession:
        """Built on the first call, inside the running loop (aiohttp binds a session to it)."""
        connector = aiohttp.TCPConnector(
            limit=self.limits.max_connections or 0,
            limit_per_host=0,
            keepalive_timeout=self.limits.keepalive_expiry,
            ssl=self.ssl_context,
        )
        return aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        with _as_httpx(sending=True):
            response = await super().handle_async_request(request)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _MappedStream(response.stream)
        return response


class _MappedStream(httpx.AsyncByteStream):
    """A response body whose read errors are httpx errors too (see :func:`_as_httpx`)."""

    def __init__(self, stream: httpx.AsyncByteStream) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx():
            async for chunk in self._stream:
                yield chunk

    async def aclose(self) -> None:
        with _as_httpx():
            await self._stream.aclose()


@contextmanager
def _as_httpx(*, sending: bool = False) -> Iterator[None]:
    """Re-raise aiohttp's exceptions (raw or as the library mapped them) as httpx's; while
    ``sending``, also aiohttp's ValueError for a header value it refuses."""
    caught: tuple[type[BaseException], ...] = (httpx.HTTPError, aiohttp.ClientError)
    try:
        yield
    except (httpx.HTTPError, aiohttp.ClientError, ValueError) as exc:
        if isinstance(exc, ValueError) and not sending and not isinstance(exc, caught):
            raise
        original: Any = exc.__cause__ if isinstance(exc, httpx.HTTPError) else exc
        if original is None:
            raise
        mapped = _mapped(original)
        if mapped is None:
            raise
        raise mapped from original


def _mapped(exc: BaseException) -> Exception | None:
    """The httpx error for an aiohttp one (its class name only), None when not aiohttp's."""
    name = type(exc).__name__
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(name)
    if isinstance(exc, aiohttp.ServerTimeoutError | asyncio.TimeoutError):
        return httpx.ReadTimeout(name)
    if isinstance(exc, aiohttp.NonHttpUrlClientError):
        return httpx.UnsupportedProtocol(name)
    if isinstance(exc, aiohttp.InvalidURL):
        return httpx.InvalidURL(name)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(name)
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError):
        return httpx.ReadError(name)
    if isinstance(exc, aiohttp.ClientConnectionError):
        return httpx.ConnectError(name)
    if isinstance(exc, aiohttp.ClientError):
        return httpx.TransportError(name)
    if isinstance(exc, ValueError) and not isinstance(exc, httpx.HTTPError):
        # aiohttp refuses a header value HTTP cannot carry with a ValueError that quotes it
        return httpx.LocalProtocolError("a header value HTTP cannot carry")
    return None
