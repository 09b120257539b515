"""Fetch a URL named in a provider's answer (an image result) as an untrusted destination.

The URL comes from a response, and a compromised, confused or proxied provider can name
anything: the cloud metadata service, an admin page on the worker's network. So the fetch
goes through the webhook SSRF guard and its pinned transport (the connection dials only the
addresses the guard approved, so DNS cannot rebind it), follows at most
:data:`MAX_REDIRECTS` redirects and checks every hop again, reads at most ``max_bytes`` under
one deadline for the whole chain, sends no credentials, and never quotes the response body
into an error: an internal page's contents would travel on to the producer's webhook.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

import httpx

from agents.egress.pinning import PIN_EXTENSION, PinnedTransport
from agents.egress.ssrf import (
    Resolver,
    UnsafeDestination,
    check_destination,
    system_resolver,
)
from agents.inference.providers._http import error_for_status
from agents.inference.providers.base import ProviderError

__all__ = ["MAX_REDIRECTS", "fetch_result"]

MAX_REDIRECTS: Final = 3
_HEADERS: Final = {"User-Agent": "assetline", "Accept": "image/*", "Accept-Encoding": "identity"}


async def fetch_result(
    transport: PinnedTransport,
    url: str,
    *,
    provider: str,
    timeout_s: float,
    max_bytes: int,
    allow: Sequence[str] = (),
    resolver: Resolver = system_resolver,
) -> bytes:
    """The body at ``url`` (2xx, at most ``max_bytes``), or a :class:`ProviderError`.

    ``allow`` lists the hosts, IPs or CIDRs that may be reached although private (a
    self-hosted server on the local network); cloud metadata addresses never may.
    """
    try:
        async with asyncio.timeout(timeout_s):
            return await _follow(transport, url, provider, timeout_s, max_bytes, allow, resolver)
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise ProviderError(
            "provider.timeout",
            f"{provider}: result URL not fetched within {timeout_s:g}s",
            retryable=True,
        ) from exc
    except UnsafeDestination as exc:
        raise ProviderError(
            "provider.unsafe_url",
            f"{provider}: result URL refused ({exc.code}): {exc}",
            retryable=exc.retryable,
        ) from None
    except httpx.TransportError as exc:  # only the class: httpx texts may quote the URL
        raise ProviderError(
            "provider.connect",
            f"{provider}: cannot fetch the result URL ({type(exc).__name__})",
            retryable=True,
        ) from exc


async def _follow(
    transport: PinnedTransport,
    url: str,
    provider: str,
    timeout_s: float,
    max_bytes: int,
    allow: Sequence[str],
    resolver: Resolver,
) -> bytes:
    for _ in range(MAX_REDIRECTS + 1):
        destination = await check_destination(url, allow, resolver)
        request = httpx.Request(
            "GET",
            url,
            headers=_HEADERS,
            extensions={
                "timeout": httpx.Timeout(timeout_s).as_dict(),
                PIN_EXTENSION: destination,
            },
        )
        response = await transport.handle_async_request(request)
        response.request = request
        try:
            location = response.headers.get("location")
            if response.is_redirect and location:
                url = str(request.url.join(location))  # checked again at the loop's top
                continue
            if not response.is_success:
                raise _status_error(provider, response)
            return await _read(response, provider, max_bytes)
        finally:
            await response.aclose()
    raise ProviderError(
        "provider.bad_response",
        f"{provider}: result URL redirects more than {MAX_REDIRECTS} times",
        retryable=True,
    )


async def _read(response: httpx.Response, provider: str, max_bytes: int) -> bytes:
    """The raw body, refused as soon as it (or its declared length) passes ``max_bytes``.

    Raw, not decoded: a gzip body could inflate far past the cap after it was counted.
    """
    if response.headers.get("content-encoding", "identity").strip().lower() != "identity":
        raise ProviderError(
            "provider.bad_response",
            f"{provider}: result URL answered with a content encoding; images are sent as is",
            retryable=True,
        )
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(provider, max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_raw():
        size += len(chunk)
        if size > max_bytes:
            raise _too_large(provider, max_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(provider: str, max_bytes: int) -> ProviderError:
    return ProviderError(
        "provider.too_large", f"{provider}: result URL body exceeds {max_bytes} bytes"
    )


def _status_error(provider: str, response: httpx.Response) -> ProviderError:
    """The status only: the body of a page we were not meant to see is never quoted."""
    status = response.status_code
    message = f"{provider}: fetching the result URL gave HTTP {status}"
    return error_for_status(message, status, response.headers)
