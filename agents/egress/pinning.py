"""Connect only to the addresses the SSRF guard approved, keeping the URL's name for HTTP and TLS.

Left alone, httpx resolves the host again when it connects, so a name could answer a public
address to the guard and ``127.0.0.1`` to the connection (DNS rebinding). Here every request
carries the guard's :class:`~agents.egress.ssrf.Destination` in a request extension;
the transport refuses a request without one (or with one for another URL) and sends it through
a connection pool whose network backend dials the approved addresses instead of the name. The
request itself is untouched, so the Host header, TLS SNI and certificate verification all use
the URL's hostname.

Pools are keyed by origin *and* approved addresses: a kept-alive connection is reused only
while the guard keeps answering the same addresses, and a virtual host never shares a TLS
connection verified for another name on the same IP.
"""

from __future__ import annotations

import contextlib
import ssl
import time
from collections import OrderedDict
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType

import httpcore
import httpx

from agents.egress.ssrf import Destination
from schemas.errors import AssetlineError

#: The request extension that carries the guard's approval; httpcore ignores unknown keys.
PIN_EXTENSION = "assetline.destination"

#: (scheme, IDNA host, port, approved addresses): one connection pool each.
PoolKey = tuple[bytes, bytes, int | None, tuple[str, ...]]

_ERRORS: tuple[tuple[type[Exception], type[httpx.TransportError]], ...] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProxyError, httpx.ProxyError),
)


class UnpinnedRequest(AssetlineError, RuntimeError):
    """A request reached the pinned transport without the guard's approval for its URL (a bug)."""

    code = "egress.unpinned_request"


@contextlib.contextmanager
def _httpx_errors(request: httpx.Request | None = None) -> Iterator[None]:
    """httpcore errors as the httpx ones callers catch (most specific class first)."""
    try:
        yield
    except Exception as exc:
        for source, target in _ERRORS:
            if isinstance(exc, source):
                raise target(str(exc), request=request) from exc
        raise


class PinnedBackend(httpcore.AsyncNetworkBackend):
    """Dials the approved addresses of one destination, in order, never the name it is given.

    The next address is tried only when one refuses or is unreachable (an IPv6 answer on an
    IPv4-only host); all of them share the connect timeout. A destination allow-listed by
    name has no addresses and is dialled by name.
    """

    def __init__(
        self, destination: Destination, inner: httpcore.AsyncNetworkBackend | None = None
    ) -> None:
        self.destination = destination
        self._inner = inner if inner is not None else httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if not self.destination.pinned:
            return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)
        deadline = None if timeout is None else time.monotonic() + timeout
        error: httpcore.ConnectError | None = None
        for address in self.destination.addresses:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise httpcore.ConnectTimeout("connect timed out")
            try:
                return await self._inner.connect_tcp(
                    address, port, left, local_address, socket_options
                )
            except httpcore.ConnectError as exc:
                error = exc
        assert error is not None  # a pinned destination has at least one address
        raise error

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _ResponseStream(httpx.AsyncByteStream):
    """The pool's body stream with httpx errors; closing it gives the pool back."""

    def __init__(self, stream: AsyncIterable[bytes], release: Callable[[], None]) -> None:
        self._stream = stream
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        try:
            close = getattr(self._stream, "aclose", None)
            if close is not None:
                with _httpx_errors():
                    await close()
        finally:
            self._release()


@dataclass
class _Pool:
    pool: httpcore.AsyncConnectionPool
    active: int = 0  # requests whose response is not closed yet; such a pool is never evicted


class PinnedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that connects each request to its destination's approved addresses.

    At most ``max_pools`` idle pools are kept (least recently used go first), so a stream of
    one-off endpoints cannot hold sockets open without bound.
    """

    def __init__(
        self,
        *,
        ssl_context: ssl.SSLContext | None = None,
        network_backend: httpcore.AsyncNetworkBackend | None = None,
        max_pools: int = 64,
        max_connections: int = 16,
        max_keepalive_connections: int = 4,
        keepalive_expiry: float = 5.0,
    ) -> None:
        if max_pools < 1:
            raise ValueError("max_pools must be at least 1")
        # trust_env=False: SSL_CERT_FILE and friends must not change whom we trust
        self._ssl_context = ssl_context or httpx.create_ssl_context(trust_env=False)
        self._backend = network_backend
        self._max_pools = max_pools
        self._limits = (max_connections, max_keepalive_connections, keepalive_expiry)
        self._pools: OrderedDict[PoolKey, _Pool] = OrderedDict()

    @property
    def pool_keys(self) -> list[PoolKey]:
        """The pools kept, least recently used first."""
        return list(self._pools)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        destination = request.extensions.get(PIN_EXTENSION)
        if not isinstance(destination, Destination) or httpx.URL(destination.url) != request.url:
            raise UnpinnedRequest("request without the SSRF guard's approval for its URL")
        assert isinstance(request.stream, httpx.AsyncByteStream)
        url = request.url
        key: PoolKey = (url.raw_scheme, url.raw_host, url.port, destination.addresses)
        entry = await self._entry(key, destination)
        entry.active += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                entry.active -= 1

        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=url.raw_scheme, host=url.raw_host, port=url.port, target=url.raw_path
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions={k: v for k, v in request.extensions.items() if k != PIN_EXTENSION},
        )
        try:
            with _httpx_errors(request):
                response = await entry.pool.handle_async_request(core_request)
        except BaseException:
            release()
            raise
        assert isinstance(response.stream, AsyncIterable)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_ResponseStream(response.stream, release),
            extensions=response.extensions,
        )

    async def _entry(self, key: PoolKey, destination: Destination) -> _Pool:
        entry = self._pools.get(key)
        if entry is not None:
            self._pools.move_to_end(key)
            return entry
        max_connections, max_keepalive, expiry = self._limits
        entry = _Pool(
            httpcore.AsyncConnectionPool(
                ssl_context=self._ssl_context,
                max_connections=max_connections,
                max_keepalive_connections=max_keepalive,
                keepalive_expiry=expiry,
                network_backend=PinnedBackend(destination, self._backend),
            )
        )
        self._pools[key] = entry
        excess = len(self._pools) - self._max_pools
        idle = [k for k, pool in self._pools.items() if pool.active == 0 and k != key]
        # taken out before the first await, so no other request can pick one up meanwhile
        evicted = [self._pools.pop(old) for old in idle[: max(excess, 0)]]
        for old_entry in evicted:
            await old_entry.pool.aclose()
        return entry

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), OrderedDict()
        for entry in pools:
            await entry.pool.aclose()


class WebhookClient:
    """The sender's HTTP client: it can only reach addresses the SSRF guard approved.

    A distinct type rather than an ``httpx.AsyncClient`` so that a plain client, which would
    resolve the name again, cannot be passed to the sender by mistake. Requests go straight
    to the transport: with no client there is no proxy from the environment (``trust_env``
    never applies), no redirect following, no cookie jar shared between receivers, and no
    ``httpx`` log line carrying the URL, which may carry a token.
    """

    def __init__(self, transport: PinnedTransport | None = None) -> None:
        self.transport = transport if transport is not None else PinnedTransport()

    @contextlib.asynccontextmanager
    async def post(
        self,
        destination: Destination,
        *,
        content: bytes,
        headers: dict[str, str],
        timeout: httpx.Timeout,
    ) -> AsyncIterator[httpx.Response]:
        """POST to ``destination.url``; the body is not read unless the caller reads it."""
        request = httpx.Request(
            "POST",
            destination.url,
            content=content,
            headers=headers,
            extensions={"timeout": timeout.as_dict(), PIN_EXTENSION: destination},
        )
        response = await self.transport.handle_async_request(request)
        try:
            yield response
        finally:
            await response.aclose()

    async def aclose(self) -> None:
        await self.transport.aclose()

    async def __aenter__(self) -> WebhookClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
