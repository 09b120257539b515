"""The shared HTTP plumbing: status mapping, Retry-After, deadlines, size caps, redaction."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any, TypeVar
from urllib.parse import quote

import httpx
import pytest

from agents.inference.providers._http import (
    HttpResult,
    RefusalCheck,
    build_client,
    lookup,
    optional_int,
    parse_retry_after,
    post_json,
    reported_model,
    send,
)
from agents.inference.providers.base import ProviderError
from tests.support.provider_server import ProviderServer, Reply, openai_error

T = TypeVar("T")
SECRET = "sk-test-0123456789abcdef"
NOW = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC)


def _run(factory: Callable[[httpx.AsyncClient], Awaitable[T]]) -> T:
    async def main() -> T:
        async with build_client() as client:
            return await factory(client)

    return asyncio.run(main())


def _send(
    server: ProviderServer,
    *,
    path: str = "/api",
    timeout_s: float = 5.0,
    max_bytes: int = 1024 * 1024,
    is_refusal: RefusalCheck | None = None,
) -> HttpResult:
    return _run(
        lambda client: send(
            client,
            "POST",
            server.url + path,
            provider="acme",
            timeout_s=timeout_s,
            headers={"Authorization": f"Bearer {SECRET}"},
            json_body={"hello": "world"},
            max_bytes=max_bytes,
            secrets=(SECRET,),
            is_refusal=is_refusal,
        )
    )


def _error(server: ProviderServer, *replies: Reply, **kwargs: Any) -> ProviderError:
    if replies:
        server.script("POST", "/api", list(replies))
    with pytest.raises(ProviderError) as caught:
        _send(server, **kwargs)
    return caught.value


# --- Retry-After ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"Retry-After": " 3 "}, 3.0),
        ({"Retry-After": "-4"}, 0.0),
        ({"retry-after-ms": "250"}, 0.25),
        ({"Retry-After-Ms": "1500", "Retry-After": "9"}, 1.5),
        ({"retry-after-ms": "-10"}, 0.0),
        ({"retry-after-ms": "soon", "Retry-After": "2"}, 2.0),
        ({"Retry-After": format_datetime(NOW + timedelta(seconds=30), usegmt=True)}, 30.0),
        ({"Retry-After": "Wed, 01 Jan 2025 12:00:10 GMT"}, 10.0),
        ({"Retry-After": "Wednesday, 01-Jan-25 12:00:10 GMT"}, 10.0),  # obsolete RFC 850
        ({"Retry-After": "Wed Jan  1 12:00:20 2025"}, 20.0),  # obsolete asctime
        ({"Retry-After": format_datetime(NOW - timedelta(minutes=5), usegmt=True)}, 0.0),
        ({"Retry-After": "later"}, None),
        ({"Retry-After": ""}, None),
        ({"Retry-After": "nan"}, None),
        ({"Retry-After": "inf"}, None),
        ({"retry-after-ms": "nan"}, None),
        ({}, None),
    ],
)
def test_parse_retry_after(headers: dict[str, str], expected: float | None) -> None:
    assert parse_retry_after(headers, now=NOW) == expected


def test_parse_retry_after_takes_httpx_headers() -> None:
    assert parse_retry_after(httpx.Headers({"RETRY-AFTER": "5"})) == 5.0


# --- success ---------------------------------------------------------------------------------


def test_returns_a_2xx_body_and_sends_headers_and_json(server: ProviderServer) -> None:
    server.script("POST", "/api", [Reply(status=201, body=b"made", headers={"X-Id": "42"})])
    result = _send(server)
    assert (result.status, result.content, result.headers["x-id"]) == (201, b"made", "42")
    (seen,) = server.requests
    assert seen.headers["authorization"] == f"Bearer {SECRET}"
    assert seen.json == {"hello": "world"}


def test_post_json_returns_the_object(server: ProviderServer) -> None:
    server.script("POST", "/api", [Reply(json={"ok": True})])
    payload = _run(
        lambda client: post_json(
            client, server.url + "/api", {"a": 1}, provider="acme", timeout_s=5.0
        )
    )
    assert payload == {"ok": True}


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body=b"<html>gateway</html>", content_type="text/html"),
        Reply(body=b'{"truncated": '),
        Reply(body=b"\xff\xfe\x00garbage"),
        Reply(json=["not", "an", "object"]),
    ],
)
def test_post_json_rejects_what_is_not_a_json_object(server: ProviderServer, reply: Reply) -> None:
    server.script("POST", "/api", [reply])
    with pytest.raises(ProviderError) as caught:
        _run(
            lambda client: post_json(
                client, server.url + "/api", {}, provider="acme", timeout_s=5.0
            )
        )
    assert caught.value.code == "provider.bad_response"
    assert caught.value.retryable


# --- status mapping --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "code", "retryable"),
    [
        (400, "provider.bad_request", False),
        (404, "provider.bad_request", False),
        (422, "provider.bad_request", False),
        (401, "provider.auth", False),
        (403, "provider.auth", False),
        (408, "provider.timeout", True),
        (429, "provider.rate_limited", True),
        (500, "provider.unavailable", True),
        (502, "provider.unavailable", True),
        (503, "provider.unavailable", True),
        (529, "provider.unavailable", True),
    ],
)
def test_maps_statuses_to_stable_codes(
    server: ProviderServer, status: int, code: str, retryable: bool
) -> None:
    error = _error(server, Reply(status=status, json=openai_error("nope", "some_error")))
    assert (error.code, error.retryable, error.refusal, error.status) == (
        code,
        retryable,
        False,
        status,
    )
    assert f"HTTP {status}" in error.message
    assert "(some_error): nope" in error.message
    assert error.message.startswith("acme: ")


def test_429_carries_retry_after(server: ProviderServer) -> None:
    error = _error(server, Reply(status=429, headers={"Retry-After": "3"}))
    assert (error.code, error.retry_after_s) == ("provider.rate_limited", 3.0)


def test_429_carries_retry_after_ms(server: ProviderServer) -> None:
    error = _error(server, Reply(status=429, headers={"retry-after-ms": "120"}))
    assert error.retry_after_s == pytest.approx(0.12)


def test_429_carries_an_http_date(server: ProviderServer) -> None:
    when = datetime.now(UTC) + timedelta(seconds=60)
    error = _error(
        server, Reply(status=429, headers={"Retry-After": format_datetime(when, usegmt=True)})
    )
    assert error.retry_after_s is not None
    assert 55 <= error.retry_after_s <= 60


def test_503_carries_retry_after(server: ProviderServer) -> None:
    error = _error(server, Reply(status=503, headers={"Retry-After": "11"}))
    assert (error.code, error.retry_after_s) == ("provider.unavailable", 11.0)


def test_error_message_shapes(server: ProviderServer) -> None:
    shapes: list[tuple[Reply, str]] = [
        (Reply(status=400, json={"error": "model not found"}), "model not found"),  # Ollama
        (Reply(status=400, json={"object": "error", "message": "bad n"}), "bad n"),  # vLLM
        (Reply(status=422, json={"detail": "field required"}), "field required"),
        (Reply(status=502, body=b"Bad   gateway\n\n", content_type="text/plain"), "Bad gateway"),
    ]
    for reply, text in shapes:
        assert _error(server, reply).message.endswith(text)


def test_long_error_messages_are_truncated(server: ProviderServer) -> None:
    error = _error(server, Reply(status=400, json=openai_error("x" * 5000)))
    assert "x" * 299 in error.message
    assert "x" * 301 not in error.message
    assert len(error.message) < 400


def test_huge_error_bodies_are_read_only_in_part(server: ProviderServer) -> None:
    error = _error(server, Reply(status=500, body=b"y" * 5_000_000, chunked=True))
    assert error.code == "provider.unavailable"


def test_refusal_check_wins_over_the_status(server: ProviderServer) -> None:
    def is_refusal(status: int, body: Any) -> bool:
        return status == 400 and body["error"]["code"] == "content_policy_violation"

    error = _error(
        server,
        Reply(status=400, json=openai_error("blocked", code="content_policy_violation")),
        is_refusal=is_refusal,
    )
    assert (error.code, error.refusal, error.retryable) == ("provider.refused", True, False)


def test_unexpected_redirects_are_not_followed(server: ProviderServer) -> None:
    error = _error(server, Reply(status=307, headers={"Location": "http://example.invalid/"}))
    assert error.code == "provider.bad_request"
    assert [seen.path for seen in server.requests] == ["/api"]


# --- transport failures ----------------------------------------------------------------------


def test_slow_answer_is_a_timeout(server: ProviderServer) -> None:
    error = _error(server, Reply(json={}, delay_s=1.0), timeout_s=0.2)
    assert (error.code, error.retryable) == ("provider.timeout", True)
    assert "0.2s" in error.message


def test_the_deadline_covers_a_trickling_body(server: ProviderServer) -> None:
    trickle = Reply(body=b"z" * 100, chunked=True, chunk_size=10, chunk_delay_s=0.1)
    error = _error(server, trickle, timeout_s=0.45)
    assert error.code == "provider.timeout"


def test_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nothing listens there
    with pytest.raises(ProviderError) as caught:
        _run(
            lambda client: send(
                client,
                "GET",
                f"http://127.0.0.1:{port}/x?key={SECRET}",
                provider="acme",
                timeout_s=5.0,
                secrets=(SECRET,),
            )
        )
    assert (caught.value.code, caught.value.retryable) == ("provider.connect", True)
    assert "127.0.0.1" in caught.value.message
    assert SECRET not in str(caught.value)


def test_unusable_url_is_a_bad_request() -> None:
    with pytest.raises(ProviderError) as caught:
        _run(lambda client: send(client, "GET", "ftp://host/x", provider="a", timeout_s=1.0))
    assert (caught.value.code, caught.value.retryable) == ("provider.bad_request", False)


# --- size cap --------------------------------------------------------------------------------


def test_declared_oversized_body_is_too_large(server: ProviderServer) -> None:
    error = _error(server, Reply(body=b"a" * 2048), max_bytes=1024)
    assert (error.code, error.retryable) == ("provider.too_large", False)
    assert "1024 bytes" in error.message


def test_streamed_oversized_body_is_too_large(server: ProviderServer) -> None:
    error = _error(server, Reply(body=b"a" * 300_000, chunked=True), max_bytes=100_000)
    assert error.code == "provider.too_large"


def test_body_exactly_at_the_cap_passes(server: ProviderServer) -> None:
    server.script("POST", "/api", [Reply(body=b"a" * 1024, chunked=True, chunk_size=100)])
    assert len(_send(server, max_bytes=1024).content) == 1024


# --- credentials -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [400, 401, 403, 429, 500, 529])
def test_an_echoed_key_never_reaches_the_error(server: ProviderServer, status: int) -> None:
    echo = openai_error(f"Incorrect API key provided: {SECRET}. Header: Bearer {SECRET}")
    error = _error(server, Reply(status=status, json=echo))
    for text in (str(error), repr(error), error.message, *map(str, error.args)):
        assert SECRET not in text
        assert "Bearer" not in text or "Bearer ***" in text


def _key_forms(key: str) -> list[str]:
    """The renderings a leak took in issue 12 #5/#8: raw, repr, JSON and URL escapes, base64."""
    stripped = key.strip()
    return [
        key,
        stripped,
        repr(key)[1:-1],
        repr(key.encode())[2:-1],
        json.dumps(key)[1:-1],
        quote(key, safe=""),
        base64.b64encode(f"user:{stripped}".encode()).decode()[8:-4],
    ]


@pytest.mark.parametrize("key", ["sk-live-NEWLINE0123456789\n", "sk-live-ACCENT0123456789\u00e9"])
def test_a_header_httpx_rejects_is_a_code_not_its_text(server: ProviderServer, key: str) -> None:
    """httpx quotes a rejected header (with the key, escaped) in its error: none of it passes."""

    async def call(client: httpx.AsyncClient) -> HttpResult:
        return await send(
            client,
            "POST",
            server.url + "/api",
            provider="acme",
            timeout_s=5.0,
            headers={"Authorization": f"Bearer {key}"},
            json_body={},
            secrets=(key,),
        )

    with pytest.raises(ProviderError) as caught:
        _run(call)
    error = caught.value
    assert (error.code, error.retryable) == ("provider.bad_header", False)
    for text in (str(error), repr(error.args), error.message):
        for form in _key_forms(key):
            assert form not in text
        assert "sk-live" not in text
    assert server.requests == []


def test_a_key_at_the_cut_is_redacted_before_the_message_is_cut(server: ProviderServer) -> None:
    """The provider text is cut at 300 characters: the cut must not leave half a key behind."""
    for padding in range(285, 300):
        server.reset()
        error = _error(server, Reply(status=400, json=openai_error("x" * padding + SECRET)))
        assert SECRET[:8] not in error.message, padding
        assert len(error.message) < 400


@pytest.mark.parametrize(
    "echo",
    [
        f"bad key {SECRET!r}",
        f"bad header b'Bearer {SECRET}\\n'",
        "bad key " + json.dumps(json.dumps(SECRET)),
        f"callback https://x.example/?key={quote(SECRET, safe='')}",
        "basic " + base64.b64encode(f"user:{SECRET}".encode()).decode(),
    ],
)
def test_escaped_forms_of_a_key_are_redacted(server: ProviderServer, echo: str) -> None:
    error = _error(server, Reply(status=401, json=openai_error(echo)))
    assert error.code == "provider.auth"
    for form in _key_forms(SECRET):
        assert form not in error.message
    assert "***" in error.message


def test_connection_failures_carry_no_httpx_text() -> None:
    """Only the exception class: httpx and httpcore texts may quote headers or the URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def call(client: httpx.AsyncClient) -> HttpResult:
        return await send(
            client,
            "GET",
            f"http://127.0.0.1:{port}/x?token={SECRET}",
            provider="acme",
            timeout_s=2.0,
        )

    with pytest.raises(ProviderError) as caught:
        _run(call)
    assert caught.value.code == "provider.connect"
    assert caught.value.message == "acme: cannot reach 127.0.0.1 (ConnectError)"


def test_the_shared_client_ignores_the_environment() -> None:
    async def main() -> bool:
        async with build_client() as client:
            return client.trust_env

    assert asyncio.run(main()) is False


# --- JSON navigation -------------------------------------------------------------------------


def test_lookup_walks_dicts_and_lists() -> None:
    data = {"choices": [{"message": {"content": "hi"}}]}
    assert lookup(data, "choices.0.message.content", "p") == "hi"
    for missing in ("choices.1", "choices.x", "nope", "choices.0.message.content.deeper"):
        with pytest.raises(ProviderError) as caught:
            lookup(data, missing, "p")
        assert caught.value.code == "provider.bad_response"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"usage": {"n": 5}}, 5),
        ({"usage": {"n": "5"}}, 0),
        ({"usage": {"n": True}}, 0),
        ({"usage": {"n": -1}}, 0),
        ({"usage": {"n": 10**12}}, 10**12),
        ({"usage": {"n": 10**12 + 1}}, 0),
        ({"usage": {"n": 10**100}}, 0),
        ({"usage": None}, 0),
        ({}, 0),
    ],
)
def test_optional_int(data: dict[str, Any], expected: int) -> None:
    assert optional_int(data, "usage.n") == expected


# --- the test server itself ------------------------------------------------------------------


def test_server_repeats_the_last_reply_then_defers_to_a_handler(server: ProviderServer) -> None:
    server.script("POST", "/api", [Reply(status=503), Reply(json={"n": 1})])
    assert _error(server).code == "provider.unavailable"
    assert _send(server).content == b'{"n": 1}'
    assert _send(server).content == b'{"n": 1}'  # script used up: the last reply repeats

    calls = iter(range(100))

    def every_other_fails(body: Any) -> Reply:
        n = next(calls)
        return Reply(status=500) if n % 2 else Reply(json={"echo": body, "n": n})

    server.handle("POST", "/api", every_other_fails)
    assert _send(server).content == b'{"echo": {"hello": "world"}, "n": 0}'
    assert _error(server).code == "provider.unavailable"
    assert len(server.requests) == 5


def test_server_answers_other_processes(server: ProviderServer) -> None:
    server.script("GET", "/ping", [Reply(body=b"pong")])
    code = f"import urllib.request; print(urllib.request.urlopen('{server.url}/ping').read())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "b'pong'"
    assert server.requests_to("/ping")[0].method == "GET"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("gpt-4o-2024-08-06", "gpt-4o-2024-08-06"),
        ("", "asked"),
        (None, "asked"),
        (42, "asked"),
        ("x" * 201, "asked"),
        ("x" * 200, "x" * 200),
        ("gpt\nEVIL: injected", "asked"),
        ("\ud800", "asked"),  # a lone surrogate, as JSON can carry: not encodable as UTF-8
        ("modèle-é", "modèle-é"),
    ],
)
def test_reported_model_is_believed_only_when_plausible(value: Any, expected: str) -> None:
    assert reported_model(value, "asked") == expected
