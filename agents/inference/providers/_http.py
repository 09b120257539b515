"""Shared plumbing of the HTTP adapters: one bounded request, failures mapped to stable codes.

Every adapter goes through :func:`send` so that a 429 means the same thing whichever provider
sent it, bodies are size-capped while streaming (a misbehaving server cannot exhaust memory),
and error messages are built from status lines and the provider's own error text only, with
credentials scrubbed (in every escaped form, before any cut to length): request headers and
httpx's own exception texts never reach a message.

Codes and what the router may do with them:

=========================  =========  ==================================================
code                       retryable  raised for
=========================  =========  ==================================================
``provider.timeout``       yes        no complete answer within ``timeout_s``; HTTP 408
``provider.connect``       yes        DNS, refused connection, reset, broken HTTP
``provider.rate_limited``  yes        HTTP 429 (``retry_after_s`` from the headers)
``provider.unavailable``   yes        HTTP 5xx and Anthropic's 529 (``retry_after_s``)
``provider.auth``          no         HTTP 401 and 403
``provider.bad_request``   no         any other non-2xx status; an unusable URL
``provider.bad_header``    no         a key or header value HTTP cannot carry (newline...)
``provider.refused``       no         the adapter's refusal check matched (``refusal``)
``provider.bad_response``  yes        2xx body that is not JSON or lacks expected fields
``provider.too_large``     no         body above ``max_bytes``
=========================  =========  ==================================================
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any, Final
from urllib.parse import urlsplit

import httpx

from agents.inference.providers._aiohttp_pool import ProviderTransport
from agents.inference.providers.base import ProviderError
from streams.redaction import redact, redact_and_truncate

__all__ = [
    "DEFAULT_MAX_RESPONSE_BYTES",
    "HttpResult",
    "RefusalCheck",
    "bad_response",
    "build_client",
    "lookup",
    "optional_int",
    "parse_json",
    "parse_retry_after",
    "post_json",
    "redact",
    "send",
]

DEFAULT_MAX_RESPONSE_BYTES: Final = 64 * 1024 * 1024
#: Error bodies only feed a message, so reading more than this is pointless.
_ERROR_BODY_BYTES: Final = 64 * 1024
_MESSAGE_CHARS: Final = 300
_BAD_HEADER: Final = (
    "the request could not be sent: a header value (API key or configured header) holds "
    "characters HTTP does not allow"
)

#: ``(status, parsed JSON body or None) -> True`` when a non-2xx answer is a content refusal.
RefusalCheck = Callable[[int, Any], bool]


@dataclass(frozen=True)
class HttpResult:
    """A successful (2xx) response, fully read within the size cap."""

    status: int
    headers: httpx.Headers
    content: bytes


class PooledAdapter:
    """Base of the HTTP adapters: the pooled client they own or borrow, and what to redact."""

    def __init__(
        self, client: httpx.AsyncClient | None, key: str, header_values: Iterable[str]
    ) -> None:
        self._client = client if client is not None else build_client()
        self._owns_client = client is None
        self._secrets = tuple(v for v in (key, *header_values) if v)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The key and header values, for a last scrub of anything bound for an event."""
        return self._secrets

    async def aclose(self) -> None:
        """Close the HTTP client if this provider created it (a shared one is the owner's)."""
        if self._owns_client:
            await self._client.aclose()


#: Connections one client may hold: the adaptive in-flight limit (up to 1024 calls per
#: provider, agents/inference/routing/adaptive_limit.py) is what bounds calls, not the pool.
#: httpx's default of 100 capped every provider at 100 calls in flight (the rest waited for a
#: connection inside the call's timeout). Idle connections are kept for ``keepalive_expiry_s``,
#: so most calls reuse one instead of paying a new TLS handshake to a hosted API.
MAX_CONNECTIONS = 1024


def build_client(
    *,
    max_connections: int = MAX_CONNECTIONS,
    keepalive_expiry_s: float = 30.0,
    connect_timeout_s: float = 10.0,
    timeout_s: float = 60.0,
) -> httpx.AsyncClient:
    """A pooled client to share between calls (and providers): TLS handshakes are costly.

    It carries no credentials: adapters send them per request, so the same client can fetch
    an image from a third-party URL without leaking a key. Redirects are not followed unless a
    request asks, so an API call never silently lands elsewhere. ``trust_env`` is off: a proxy
    or CA bundle from the environment must not see or redirect calls that carry keys, and no
    cookie is kept. The
    connections are aiohttp's (:mod:`agents.inference.providers._aiohttp_pool`: a quarter of
    httpcore's CPU per call with hundreds in flight).
    """
    return httpx.AsyncClient(
        trust_env=False,
        transport=ProviderTransport(
            max_connections=max_connections, keepalive_expiry_s=keepalive_expiry_s
        ),
        timeout=httpx.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s)),
        follow_redirects=False,
        headers={"User-Agent": "assetline"},
        cookies=_no_cookies(),
    )


def _no_cookies() -> CookieJar:
    """A jar that keeps nothing: one provider's ``Set-Cookie`` must never ride on later calls
    (httpx's clients keep cookies by default, and the client is shared between providers)."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def parse_retry_after(
    headers: Mapping[str, str] | httpx.Headers, *, now: datetime | None = None
) -> float | None:
    """Seconds to wait before retrying, from ``retry-after-ms`` or ``Retry-After``.

    ``retry-after-ms`` (OpenAI) is more precise and wins when valid. ``Retry-After`` is
    delta-seconds or an HTTP-date (RFC 9110 section 10.2.3). Past dates and negative values
    mean "now" (0); anything unparsable is ignored (None) rather than guessed at.
    """
    lookup_headers = headers if isinstance(headers, httpx.Headers) else httpx.Headers(headers)
    millis = _non_negative(lookup_headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    value = lookup_headers.get("retry-after")
    if value is None:
        return None
    seconds = _non_negative(value)
    if seconds is not None:
        return seconds
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # RFC 9110 dates are GMT; obsolete formats may lack the zone
        when = when.replace(tzinfo=UTC)
    delta = (when - (now or datetime.now(UTC))).total_seconds()
    return max(0.0, delta)


def _non_negative(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(number):
        return None
    return max(0.0, number)


def bad_response(provider: str, detail: str) -> ProviderError:
    """A 2xx answer the adapter cannot use; retryable, since the next one may be whole."""
    return ProviderError(
        "provider.bad_response", f"{provider}: unusable response: {detail}", retryable=True
    )


async def send(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    provider: str,
    timeout_s: float,
    headers: Mapping[str, str] | None = None,
    json_body: Any = None,
    content: bytes | None = None,
    max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    secrets: Sequence[str] = (),
    is_refusal: RefusalCheck | None = None,
    follow_redirects: bool = False,
) -> HttpResult:
    """Send one request and return its 2xx response, or raise a :class:`ProviderError`.

    ``timeout_s`` bounds the whole exchange (connect, upload, every byte of the answer), not
    each socket read, so a server trickling bytes cannot stretch a call past its budget.
    ``secrets`` are scrubbed from every message, in case a server echoes one back.
    ``content`` is a ready body (a multipart upload) sent instead of ``json_body``.
    """
    try:
        async with asyncio.timeout(timeout_s):
            status, reason, response_headers, content = await _exchange(
                client,
                method,
                url,
                headers=headers,
                json_body=json_body,
                content=content,
                timeout_s=timeout_s,
                max_bytes=max_bytes,
                follow_redirects=follow_redirects,
                provider=provider,
            )
    except (TimeoutError, httpx.TimeoutException) as exc:
        raise ProviderError(
            "provider.timeout",
            f"{provider}: no complete answer within {timeout_s:g}s",
            retryable=True,
        ) from exc
    except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
        raise ProviderError(
            "provider.bad_request", f"{provider}: unusable URL ({type(exc).__name__})"
        ) from exc
    except httpx.DecodingError as exc:
        raise bad_response(provider, "undecodable body (content encoding)") from exc
    except httpx.TooManyRedirects as exc:
        raise ProviderError("provider.bad_request", f"{provider}: too many redirects") from exc
    except (httpx.LocalProtocolError, UnicodeEncodeError) as exc:
        # httpx quotes the offending header (the key in it) in its text: never pass it on
        raise ProviderError("provider.bad_header", f"{provider}: {_BAD_HEADER}") from exc
    except httpx.TransportError as exc:
        # only the class: httpx and httpcore texts may quote headers, the URL or the body
        raise ProviderError(
            "provider.connect",
            f"{provider}: cannot reach {_host(url)} ({type(exc).__name__})",
            retryable=True,
        ) from exc
    if 200 <= status < 300:
        return HttpResult(status, response_headers, content)
    raise _status_error(provider, status, reason, response_headers, content, secrets, is_refusal)


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: Mapping[str, Any],
    *,
    provider: str,
    timeout_s: float,
    headers: Mapping[str, str] | None = None,
    max_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    secrets: Sequence[str] = (),
    is_refusal: RefusalCheck | None = None,
) -> dict[str, Any]:
    """POST a JSON body and return the JSON object it answers (see :func:`send`)."""
    result = await send(
        client,
        "POST",
        url,
        provider=provider,
        timeout_s=timeout_s,
        headers=headers,
        json_body=body,
        max_bytes=max_bytes,
        secrets=secrets,
        is_refusal=is_refusal,
    )
    payload = parse_json(result.content, provider)
    if not isinstance(payload, dict):
        raise bad_response(provider, f"expected a JSON object, got {type(payload).__name__}")
    return payload


def parse_json(content: bytes, provider: str) -> Any:
    """The decoded JSON body; ``provider.bad_response`` when it is not JSON."""
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        raise bad_response(provider, f"body is not JSON ({len(content)} bytes)") from exc


def lookup(data: Any, path: str, provider: str) -> Any:
    """``data`` at a dotted path (``"choices.0.message"``; digits index lists).

    A missing key or index is ``provider.bad_response``: the answer lacks what the adapter
    needs, which says nothing about the request.
    """
    current = data
    for part in path.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isdigit() and int(part) < len(current):
            current = current[int(part)]
        else:
            raise bad_response(provider, f"response has no {path!r}")
    return current


#: Longest model name a provider may report; a longer one is not believed.
MAX_MODEL_NAME = 200


def reported_model(value: Any, requested: str) -> str:
    """The model a provider says answered, when it is a plausible name, else ``requested``.

    The name travels in every record about the asset, so a hostile or broken provider must not
    put control characters, a lone surrogate (unencodable as UTF-8) or a megabyte there.
    """
    if not isinstance(value, str) or not 0 < len(value) <= MAX_MODEL_NAME:
        return requested
    if not value.isprintable():
        return requested
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return requested
    return value


#: Above this a usage count is not believable (and past 2**63 Avro's long cannot carry it).
MAX_USAGE_COUNT = 10**12


def optional_int(data: Any, path: str) -> int:
    """A non-negative integer at ``path`` up to ``MAX_USAGE_COUNT``, else 0: usage is best
    effort, never a failure (a hostile provider's 10**100 must not crash the encoder)."""
    try:
        value = lookup(data, path, "")
    except ProviderError:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_USAGE_COUNT:
        return 0
    return value


async def _exchange(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    headers: Mapping[str, str] | None,
    json_body: Any,
    content: bytes | None,
    timeout_s: float,
    max_bytes: int,
    follow_redirects: bool,
    provider: str,
) -> tuple[int, str, httpx.Headers, bytes]:
    async with client.stream(
        method,
        url,
        headers=dict(headers or {}),
        json=json_body,
        content=content,
        timeout=httpx.Timeout(timeout_s),
        follow_redirects=follow_redirects,
    ) as response:
        success = response.is_success
        if success:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise _too_large(provider, max_bytes)
        limit = max_bytes if success else min(max_bytes, _ERROR_BODY_BYTES)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > limit:
                if success:
                    raise _too_large(provider, max_bytes)
                chunks.append(chunk[: len(chunk) - (size - limit)])
                break  # an error body is only read for its message: a prefix will do
            chunks.append(chunk)
        return response.status_code, response.reason_phrase, response.headers, b"".join(chunks)


def _too_large(provider: str, max_bytes: int) -> ProviderError:
    return ProviderError(
        "provider.too_large", f"{provider}: response body exceeds {max_bytes} bytes"
    )


def _status_error(
    provider: str,
    status: int,
    reason: str,
    headers: httpx.Headers,
    content: bytes,
    secrets: Sequence[str],
    is_refusal: RefusalCheck | None,
) -> ProviderError:
    try:
        parsed: Any = json.loads(content)
    except (ValueError, UnicodeDecodeError):
        parsed = None
    detail = _error_detail(parsed, content, secrets)
    message = redact(f"{provider}: HTTP {status} {reason}".rstrip(), secrets) + detail
    if is_refusal is not None and is_refusal(status, parsed):
        return ProviderError("provider.refused", message, refusal=True, status=status)
    return error_for_status(message, status, headers)


def error_for_status(message: str, status: int, headers: httpx.Headers) -> ProviderError:
    """The code and retry hint an HTTP error status means, for any provider call or fetch."""
    if status == 429:
        return ProviderError(
            "provider.rate_limited",
            message,
            retryable=True,
            retry_after_s=parse_retry_after(headers),
            status=status,
        )
    if status >= 500:  # includes Anthropic's 529 "overloaded"
        return ProviderError(
            "provider.unavailable",
            message,
            retryable=True,
            retry_after_s=parse_retry_after(headers),
            status=status,
        )
    if status == 408:
        return ProviderError("provider.timeout", message, retryable=True, status=status)
    if status in (401, 403):
        return ProviderError("provider.auth", message, status=status)
    return ProviderError("provider.bad_request", message, status=status)


def _error_detail(parsed: Any, content: bytes, secrets: Sequence[str]) -> str:
    """``" (type): message"`` from the usual error shapes, else the start of the body.

    Redacted before it is cut to length: a key cut at the boundary would match nothing.
    """
    kind: str | None = None
    text: str | None = None
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict):  # OpenAI, Anthropic
            text = _first_str(error, "message")
            kind = _first_str(error, "type", "code")
        elif isinstance(error, str):  # Ollama, many proxies
            text = error
        if text is None:  # vLLM ("message"), FastAPI ("detail")
            text = _first_str(parsed, "message", "detail", "error_description")
    if text is None:
        text = content.decode("utf-8", "replace")
    text = redact_and_truncate(" ".join(redact(text, secrets).split()), secrets, _MESSAGE_CHARS)
    kind = redact_and_truncate(kind, secrets, _MESSAGE_CHARS) if kind else None
    prefix = f" ({kind})" if kind else ""
    return f"{prefix}: {text}" if text else prefix


def _first_str(data: Mapping[str, Any], *keys: str) -> str | None:
    for key in keys:
        value = data.get(key)
        if isinstance(value, str) and value:
            return value
    return None


def _host(url: str) -> str:
    """Only the host: a query string may carry a key."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    return host or "the server"
