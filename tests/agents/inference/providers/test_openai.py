"""The OpenAI-compatible adapter against a real local server speaking OpenAI's wire format."""

from __future__ import annotations

import asyncio
import io
import json
import time
from typing import Any

import httpx
import pytest
from PIL import Image
from pydantic import SecretStr

from agents.egress.ssrf import Resolver, system_resolver
from agents.inference.providers._fetch import MAX_REDIRECTS
from agents.inference.providers.base import Generated, ProviderCall, ProviderError, Usage
from agents.inference.providers.openai import OpenAIConfig, OpenAIProvider
from schemas.records import AssetKind
from tests.support.provider_calls import make_call
from tests.support.provider_server import (
    ProviderServer,
    Reply,
    openai_chat_response,
    openai_error,
    openai_image_response,
    png_bytes,
)

KEY = "sk-proj-SECRETSECRET0123456789"
#: Result URLs may reach the test server only because it is allow-listed, as an operator would.
LOCAL = ("127.0.0.1",)
CHAT = "/v1/chat/completions"
IMAGES = "/v1/images/generations"
SCHEMA = {
    "type": "object",
    "properties": {"headline": {"type": "string"}},
    "required": ["headline"],
    "additionalProperties": False,
}


def _generate(
    server: ProviderServer,
    call: ProviderCall,
    *,
    key: str | None = KEY,
    resolver: Resolver = system_resolver,
    **config: Any,
) -> Generated:
    async def main() -> Generated:
        provider = OpenAIProvider(
            "openai-main",
            OpenAIConfig(base_url=server.url + "/v1/", **config),
            SecretStr(key) if key is not None else None,
            resolver=resolver,
        )
        try:
            return await provider.generate(call)
        finally:
            await provider.aclose()

    return asyncio.run(main())


def _fails(server: ProviderServer, call: ProviderCall, **config: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        _generate(server, call, **config)
    return caught.value


def _chat_body(server: ProviderServer) -> dict[str, Any]:
    (seen,) = server.requests_to(CHAT)
    assert isinstance(seen.json, dict)
    return seen.json


# --- chat ------------------------------------------------------------------------------------


def test_text_sends_the_pinned_model_and_reads_usage(server: ProviderServer) -> None:
    server.script("POST", CHAT, [Reply(json=openai_chat_response("Run further.", model="m-v2"))])
    call = make_call(
        model="gpt-4o-mini-2024-07-18",
        max_output_tokens=200,
        params={"temperature": 0.2, "seed": 7},
        max_chars=80,
    )
    generated = _generate(
        server, call, organization="org-1", extra_headers={"X-Team": "growth-marketing"}
    )

    assert generated == Generated(
        data=b"Run further.",
        media_type="text/plain; charset=utf-8",
        provider="openai-main",
        model_version="m-v2",
        usage=Usage(input_tokens=12, output_tokens=34),
    )
    body = _chat_body(server)
    assert body["model"] == "gpt-4o-mini-2024-07-18"
    assert body["max_tokens"] == 200
    assert (body["temperature"], body["seed"]) == (0.2, 7)
    assert "response_format" not in body
    system, user = body["messages"]
    assert system["role"] == "system"
    assert "80 characters" in system["content"]
    assert user == {"role": "user", "content": call.prompt}
    headers = server.requests[0].headers
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["openai-organization"] == "org-1"
    assert headers["x-team"] == "growth-marketing"


def test_no_key_sends_no_authorization(server: ProviderServer) -> None:
    server.script("POST", CHAT, [Reply(json=openai_chat_response("hi"))])
    _generate(server, make_call(), key=None)
    assert "authorization" not in server.requests[0].headers
    assert "max_tokens" not in _chat_body(server)


def test_params_override_defaults_and_max_completion_tokens_replaces_max_tokens(
    server: ProviderServer,
) -> None:
    server.script("POST", CHAT, [Reply(json=openai_chat_response("hi"))])
    call = make_call(max_output_tokens=100, params={"max_completion_tokens": 300, "n": 1})
    _generate(server, call)
    body = _chat_body(server)
    assert "max_tokens" not in body
    assert (body["max_completion_tokens"], body["n"]) == (300, 1)


def test_missing_model_and_usage_fall_back(server: ProviderServer) -> None:
    payload = openai_chat_response("hi")
    del payload["model"], payload["usage"]
    server.script("POST", CHAT, [Reply(json=payload)])
    generated = _generate(server, make_call(model="llama3.1:8b"))
    assert (generated.model_version, generated.usage) == ("llama3.1:8b", Usage())


def test_json_with_schema_asks_for_strict_structured_output(server: ProviderServer) -> None:
    fenced = '```json\n{"headline": "Go"}\n```'
    server.script("POST", CHAT, [Reply(json=openai_chat_response(fenced))])
    call = make_call(AssetKind.JSON, json_schema=json.dumps(SCHEMA))
    generated = _generate(server, call)
    assert json.loads(generated.data) == {"headline": "Go"}
    assert generated.media_type == "application/json"
    assert _chat_body(server)["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "asset", "schema": SCHEMA, "strict": True},
    }
    assert "JSON" in _chat_body(server)["messages"][0]["content"]


def test_json_without_schema_asks_for_a_json_object(server: ProviderServer) -> None:
    server.script("POST", CHAT, [Reply(json=openai_chat_response('{"a": 1}'))])
    generated = _generate(server, make_call(AssetKind.JSON))
    assert generated.data == b'{"a": 1}'
    assert _chat_body(server)["response_format"] == {"type": "json_object"}


def test_invalid_schema_is_a_bad_constraint(server: ProviderServer) -> None:
    error = _fails(server, make_call(AssetKind.JSON, json_schema="{not json"))
    assert (error.code, error.retryable) == ("provider.bad_constraints", False)
    assert server.requests == []


@pytest.mark.parametrize(
    ("language", "named", "media_type"),
    [
        (None, "python", "text/x-python"),
        ("Python", "python", "text/x-python"),
        ("js", "javascript", "application/javascript"),
        ("json", "json", "application/json"),
        ("Rust", "rust", "text/plain; charset=utf-8"),
    ],
)
def test_code_strips_one_fence_and_names_the_language(
    server: ProviderServer, language: str | None, named: str, media_type: str
) -> None:
    code = 'print("```")\nprint(1)'
    server.script("POST", CHAT, [Reply(json=openai_chat_response(f"```py\n{code}\n```\n"))])
    generated = _generate(server, make_call(AssetKind.CODE, language=language))
    assert generated.data == code.encode()
    assert generated.media_type == media_type
    system = _chat_body(server)["messages"][0]["content"]
    assert f"only {named} code" in system


def test_text_keeps_fences(server: ProviderServer) -> None:
    text = "```\nnot stripped for prose\n```"
    server.script("POST", CHAT, [Reply(json=openai_chat_response(text))])
    assert _generate(server, make_call()).data == text.encode()


def test_refusal_field_is_a_refusal_with_usage(server: ProviderServer) -> None:
    payload = openai_chat_response(None, refusal="I can't help with that.", prompt_tokens=9)
    server.script("POST", CHAT, [Reply(json=payload)])
    error = _fails(server, make_call())
    assert (error.code, error.refusal, error.retryable) == ("provider.refused", True, False)
    assert error.usage == Usage(input_tokens=9, output_tokens=34)
    assert "I can't help with that." in error.message


def test_content_filter_finish_is_a_refusal(server: ProviderServer) -> None:
    payload = openai_chat_response("", finish_reason="content_filter")
    server.script("POST", CHAT, [Reply(json=payload)])
    error = _fails(server, make_call())
    assert (error.code, error.refusal) == ("provider.refused", True)


def test_content_policy_400_on_chat_is_a_refusal(server: ProviderServer) -> None:
    body = openai_error("filtered", "invalid_request_error", "content_filter")
    server.script("POST", CHAT, [Reply(status=400, json=body)])
    assert _fails(server, make_call()).refusal


@pytest.mark.parametrize(
    "payload",
    [
        openai_chat_response(""),
        openai_chat_response("   \n"),
        openai_chat_response(None),
        {"choices": []},
        {"choices": [{"message": "hello"}]},
        {"id": "x"},
    ],
)
def test_unusable_answers_are_bad_responses(
    server: ProviderServer, payload: dict[str, Any]
) -> None:
    server.script("POST", CHAT, [Reply(json=payload)])
    error = _fails(server, make_call())
    assert (error.code, error.retryable) == ("provider.bad_response", True)


def test_malformed_json_is_a_bad_response(server: ProviderServer) -> None:
    server.script("POST", CHAT, [Reply(body=b'{"choices": [', content_type="application/json")])
    assert _fails(server, make_call()).code == "provider.bad_response"


@pytest.mark.parametrize(
    ("status", "body", "code", "retryable"),
    [
        (400, openai_error("Unknown parameter: 'foo'."), "provider.bad_request", False),
        (401, openai_error("Bad API key", code="invalid_api_key"), "provider.auth", False),
        (404, openai_error("No such model", code="model_not_found"), "provider.bad_request", False),
        (
            500,
            openai_error("The server had an error", "server_error"),
            "provider.unavailable",
            True,
        ),
        (529, openai_error("Overloaded", "server_error"), "provider.unavailable", True),
    ],
)
def test_error_bodies(
    server: ProviderServer, status: int, body: dict[str, Any], code: str, retryable: bool
) -> None:
    server.script("POST", CHAT, [Reply(status=status, json=body)])
    error = _fails(server, make_call())
    assert (error.code, error.retryable, error.refusal, error.status) == (
        code,
        retryable,
        False,
        status,
    )
    assert body["error"]["message"] in error.message
    assert f"HTTP {status}" in error.message


@pytest.mark.parametrize(
    ("headers", "retry_after_s"),
    [
        ({"Retry-After": "2"}, 2.0),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, 0.0),  # in the past: retry now
        ({"retry-after-ms": "750", "Retry-After": "1"}, 0.75),
        ({}, None),
    ],
)
def test_rate_limit_carries_retry_after(
    server: ProviderServer, headers: dict[str, str], retry_after_s: float | None
) -> None:
    body = openai_error("Rate limit reached for requests", "requests", "rate_limit_exceeded")
    server.script("POST", CHAT, [Reply(status=429, json=body, headers=headers)])
    error = _fails(server, make_call())
    assert (error.code, error.retryable, error.retry_after_s) == (
        "provider.rate_limited",
        True,
        retry_after_s,
    )


def test_slow_answer_times_out(server: ProviderServer) -> None:
    server.script("POST", CHAT, [Reply(json=openai_chat_response("late"), delay_s=0.6)])
    error = _fails(server, make_call(timeout_s=0.2))
    assert (error.code, error.retryable) == ("provider.timeout", True)


def test_recovers_after_a_failure(server: ProviderServer) -> None:
    server.script(
        "POST",
        CHAT,
        [Reply(status=503), Reply(json=openai_chat_response("second time lucky"))],
    )
    call = make_call()
    assert _fails(server, call).code == "provider.unavailable"
    assert _generate(server, call).data == b"second time lucky"


def test_oversized_answer_is_too_large(server: ProviderServer) -> None:
    server.script("POST", CHAT, [Reply(json=openai_chat_response("x" * 50_000), chunked=True)])
    error = _fails(server, make_call(), max_response_bytes=10_000)
    assert (error.code, error.retryable) == ("provider.too_large", False)


def test_the_key_never_appears_in_errors(server: ProviderServer) -> None:
    echo = openai_error(f"Incorrect API key provided: {KEY}", code="invalid_api_key")
    replies = [
        Reply(status=401, json=echo),
        Reply(status=400, json=echo),
        Reply(status=429, json=echo),
        Reply(status=500, body=f"upstream rejected Bearer {KEY}".encode()),
        Reply(body=f"not json {KEY}".encode()),
        Reply(json=openai_chat_response(None, refusal=f"refused {KEY[:5]}")),
        Reply(json=openai_chat_response("late"), delay_s=0.5),
    ]
    server.script("POST", CHAT, replies)
    for _ in replies:
        error = _fails(server, make_call(timeout_s=0.2))
        assert KEY not in str(error)
        assert KEY not in repr(error.args)
        assert "Authorization" not in error.message


@pytest.mark.parametrize("padding", [0, 280, 290, 295])
def test_refusal_text_is_redacted_before_it_is_cut(server: ProviderServer, padding: int) -> None:
    """``message.refusal`` is provider text bound for the completion: scrubbed like the rest."""
    refusal = "r" * padding + f"I will not use {KEY} or {json.dumps(KEY)}"
    server.script("POST", CHAT, [Reply(json=openai_chat_response(None, refusal=refusal))])
    error = _fails(server, make_call())
    assert error.code == "provider.refused"
    assert KEY[:10] not in error.message
    assert len(error.message) < 400


# --- images ----------------------------------------------------------------------------------


def _image_body(server: ProviderServer) -> dict[str, Any]:
    (seen,) = server.requests_to(IMAGES)
    assert isinstance(seen.json, dict)
    return seen.json


def test_image_b64_result(server: ProviderServer) -> None:
    png = png_bytes(64, 32)
    payload = openai_image_response(png, input_tokens=50, output_tokens=4160)
    server.script("POST", IMAGES, [Reply(json=payload)])
    call = make_call(
        AssetKind.IMAGE, model="gpt-image-1", params={"quality": "high"}, width=1536, height=1024
    )
    generated = _generate(server, call, image_response_format=None)

    assert generated.data == png
    assert Image.open(io.BytesIO(generated.data)).size == (64, 32)
    assert generated.media_type == "image/png"
    assert generated.model_version == "gpt-image-1"
    assert generated.usage == Usage(input_tokens=50, output_tokens=4160, images=1)
    assert _image_body(server) == {
        "model": "gpt-image-1",
        "prompt": call.prompt,
        "n": 1,
        "size": "1536x1024",
        "quality": "high",
    }


def test_image_defaults_size_and_response_format(server: ProviderServer) -> None:
    server.script("POST", IMAGES, [Reply(json=openai_image_response(png_bytes()))])
    generated = _generate(server, make_call(AssetKind.IMAGE, width=512), image_size="256x256")
    assert generated.usage == Usage(images=1)
    body = _image_body(server)
    assert (body["size"], body["response_format"]) == ("256x256", "b64_json")


@pytest.mark.parametrize(("fmt", "media_type"), [("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
def test_image_media_type_comes_from_the_bytes(
    server: ProviderServer, fmt: str, media_type: str
) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(buffer, format=fmt)
    server.script("POST", IMAGES, [Reply(json=openai_image_response(buffer.getvalue()))])
    assert _generate(server, make_call(AssetKind.IMAGE)).media_type == media_type


def test_image_url_result_is_fetched_without_credentials(server: ProviderServer) -> None:
    png = png_bytes(20, 10)
    server.script("GET", "/files/img-1.png", [Reply(body=png, content_type="image/png")])
    payload = openai_image_response(f"{server.url}/files/img-1.png")
    server.script("POST", IMAGES, [Reply(json=payload)])
    generated = _generate(
        server, make_call(AssetKind.IMAGE), image_response_format="url", result_url_allow=LOCAL
    )

    assert (generated.data, generated.media_type) == (png, "image/png")
    post, get = server.requests
    assert (post.path, get.path) == (IMAGES, "/files/img-1.png")
    assert post.headers["authorization"] == f"Bearer {KEY}"
    assert "authorization" not in get.headers
    assert KEY not in json.dumps(dict(get.headers))


def test_image_url_failures_are_provider_errors(server: ProviderServer) -> None:
    server.script("GET", "/files/gone.png", [Reply(status=404)])
    payload = openai_image_response(f"{server.url}/files/gone.png")
    server.script("POST", IMAGES, [Reply(json=payload)])
    error = _fails(server, make_call(AssetKind.IMAGE), result_url_allow=LOCAL)
    assert error.code == "provider.bad_request"


def test_oversized_image_url_is_too_large(server: ProviderServer) -> None:
    big = png_bytes() + b"\0" * 200_000
    server.script("GET", "/files/big.png", [Reply(body=big, chunked=True)])
    server.script(
        "POST", IMAGES, [Reply(json=openai_image_response(f"{server.url}/files/big.png"))]
    )
    error = _fails(
        server, make_call(AssetKind.IMAGE), max_response_bytes=50_000, result_url_allow=LOCAL
    )
    assert error.code == "provider.too_large"


# --- result URLs are untrusted destinations (issue 12 #9) ---------------------------------------

SECRET_PAGE = b"<html>root password: hunter2-INTERNAL-SECRET</html>"


def _image_at(server: ProviderServer, url: str) -> None:
    server.script("POST", IMAGES, [Reply(json=openai_image_response(url))])


def _serve_secret(internal: ProviderServer) -> str:
    internal.script("GET", "/admin", [Reply(body=SECRET_PAGE, content_type="text/html")])
    return f"{internal.url}/admin"


def _assert_no_secret(error: ProviderError) -> None:
    for text in (error.message, str(error), repr(error.args)):
        assert b"hunter2" not in text.encode()
        assert "INTERNAL-SECRET" not in text


def test_an_image_url_on_a_private_host_is_never_fetched(
    server: ProviderServer, internal: ProviderServer
) -> None:
    _image_at(server, _serve_secret(internal))
    error = _fails(server, make_call(AssetKind.IMAGE))
    assert (error.code, error.retryable) == ("provider.unsafe_url", False)
    assert "ssrf.blocked_address" in error.message
    assert internal.requests == []
    _assert_no_secret(error)


def test_the_allow_list_does_not_cover_other_private_hosts(
    server: ProviderServer, internal: ProviderServer
) -> None:
    _image_at(server, _serve_secret(internal))  # 127.0.0.2, while only 127.0.0.1 is allowed
    error = _fails(server, make_call(AssetKind.IMAGE), result_url_allow=LOCAL)
    assert error.code == "provider.unsafe_url"
    assert internal.requests == []


def test_a_redirect_to_a_private_host_is_refused_at_that_hop(
    server: ProviderServer, internal: ProviderServer
) -> None:
    secret_url = _serve_secret(internal)
    server.script("GET", "/files/img.png", [Reply(status=302, headers={"Location": secret_url})])
    _image_at(server, f"{server.url}/files/img.png")
    error = _fails(server, make_call(AssetKind.IMAGE), result_url_allow=LOCAL)
    assert error.code == "provider.unsafe_url"
    assert [seen.path for seen in server.requests] == [IMAGES, "/files/img.png"]
    assert internal.requests == []
    _assert_no_secret(error)


def test_redirects_to_allowed_hosts_are_followed_each_hop_checked(
    server: ProviderServer,
) -> None:
    png = png_bytes(12, 12)
    server.script("GET", "/files/a.png", [Reply(status=301, headers={"Location": "/files/b.png"})])
    server.script("GET", "/files/b.png", [Reply(status=307, headers={"Location": "c.png"})])
    server.script("GET", "/files/c.png", [Reply(body=png, content_type="image/png")])
    _image_at(server, f"{server.url}/files/a.png")
    generated = _generate(server, make_call(AssetKind.IMAGE), result_url_allow=LOCAL)
    assert generated.data == png
    assert [seen.path for seen in server.requests][1:] == [
        "/files/a.png",
        "/files/b.png",
        "/files/c.png",
    ]


def test_a_redirect_loop_stops_after_the_limit(server: ProviderServer) -> None:
    server.script("GET", "/files/loop.png", [Reply(status=302, headers={"Location": "loop.png"})])
    _image_at(server, f"{server.url}/files/loop.png")
    error = _fails(server, make_call(AssetKind.IMAGE), result_url_allow=LOCAL)
    assert error.code == "provider.bad_response"
    assert len(server.requests_to("/files/loop.png")) == MAX_REDIRECTS + 1


@pytest.mark.parametrize("status", [200, 403, 404, 500])
def test_a_result_page_body_is_never_quoted(server: ProviderServer, status: int) -> None:
    server.script(
        "GET", "/files/x.png", [Reply(status=status, body=SECRET_PAGE, content_type="text/html")]
    )
    _image_at(server, f"{server.url}/files/x.png")
    error = _fails(server, make_call(AssetKind.IMAGE), result_url_allow=LOCAL)
    assert error.code != "provider.unsafe_url"  # it was fetched: the body is what is at stake
    _assert_no_secret(error)


def test_the_connection_goes_to_the_address_the_guard_approved(server: ProviderServer) -> None:
    """A name is resolved once, by the guard; the connection dials that address, not the name."""
    png = png_bytes(9, 9)
    server.script("GET", "/files/n.png", [Reply(body=png, content_type="image/png")])
    port = server.url.rsplit(":", 1)[1]
    _image_at(server, f"http://cdn.images.invalid:{port}/files/n.png")

    async def resolve(host: str, port: int) -> list[str]:
        assert host == "cdn.images.invalid"  # .invalid never resolves for real
        return ["127.0.0.1"]

    generated = _generate(
        server, make_call(AssetKind.IMAGE), result_url_allow=LOCAL, resolver=resolve
    )
    assert generated.data == png
    assert server.requests_to("/files/n.png")[0].headers["host"].startswith("cdn.images.invalid")


def test_a_name_resolving_to_a_private_address_is_refused(
    server: ProviderServer, internal: ProviderServer
) -> None:
    port = _serve_secret(internal).rsplit(":", 1)[1].split("/")[0]
    _image_at(server, f"http://images.example.com:{port}/admin")

    async def resolve(host: str, port: int) -> list[str]:
        return ["127.0.0.2"]

    error = _fails(server, make_call(AssetKind.IMAGE), result_url_allow=LOCAL, resolver=resolve)
    assert error.code == "provider.unsafe_url"
    assert internal.requests == []


def test_a_trickling_result_url_is_bounded_by_the_call_timeout(server: ProviderServer) -> None:
    body = png_bytes() + b"\0" * 4000
    slow = Reply(body=body, chunked=True, chunk_size=100, chunk_delay_s=0.1)  # ~4 s in all
    server.script("GET", "/files/slow.png", [slow])
    _image_at(server, f"{server.url}/files/slow.png")
    started = time.monotonic()
    error = _fails(server, make_call(AssetKind.IMAGE, timeout_s=0.8), result_url_allow=LOCAL)
    assert (error.code, error.retryable) == ("provider.timeout", True)
    assert time.monotonic() - started < 3.0


def test_a_proxy_from_the_environment_is_ignored(
    server: ProviderServer, internal: ProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """trust_env is off: HTTP(S)_PROXY must not see (or reroute) calls that carry the key."""
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, internal.url)
    server.script("POST", CHAT, [Reply(json=openai_chat_response("hi"))])
    assert _generate(server, make_call()).data == b"hi"
    assert internal.requests == []


@pytest.mark.parametrize(
    "payload",
    [
        openai_image_response(b"GIF89a not a supported image"),
        {"data": [{"b64_json": "!!!not base64!!!"}]},
        {"data": [{"revised_prompt": "no image"}]},
        {"data": []},
        {"data": [{"url": "file:///etc/passwd"}]},
        {"created": 1},
    ],
)
def test_unusable_image_answers_are_bad_responses(
    server: ProviderServer, payload: dict[str, Any]
) -> None:
    server.script("POST", IMAGES, [Reply(json=payload)])
    error = _fails(server, make_call(AssetKind.IMAGE))
    assert (error.code, error.retryable) == ("provider.bad_response", True)


@pytest.mark.parametrize(
    "error_body",
    [
        openai_error("Rejected by the safety system.", code="content_policy_violation"),
        openai_error("Blocked by moderation.", "image_generation_user_error", "moderation_blocked"),
        openai_error("Rejected", "content_policy_violation_error"),
    ],
)
def test_image_content_policy_is_a_refusal(
    server: ProviderServer, error_body: dict[str, Any]
) -> None:
    server.script("POST", IMAGES, [Reply(status=400, json=error_body)])
    error = _fails(server, make_call(AssetKind.IMAGE))
    assert (error.code, error.refusal, error.retryable) == ("provider.refused", True, False)
    assert error_body["error"]["message"] in error.message


def test_other_image_400s_are_bad_requests(server: ProviderServer) -> None:
    body = openai_error("Invalid size '7x7'.", code="invalid_value")
    server.script("POST", IMAGES, [Reply(status=400, json=body)])
    error = _fails(server, make_call(AssetKind.IMAGE, width=7, height=7))
    assert (error.code, error.refusal) == ("provider.bad_request", False)


# --- lifecycle -------------------------------------------------------------------------------


def test_a_shared_client_is_left_open(server: ProviderServer) -> None:
    server.script("POST", CHAT, [Reply(json=openai_chat_response("hi"))])

    async def main() -> bool:
        async with httpx.AsyncClient() as client:
            provider = OpenAIProvider(
                "o", OpenAIConfig(base_url=server.url + "/v1"), None, client=client
            )
            await provider.generate(make_call())
            await provider.aclose()
            return client.is_closed

    assert asyncio.run(main()) is False


def test_an_owned_client_is_closed() -> None:
    async def main() -> bool:
        provider = OpenAIProvider("o", OpenAIConfig(), SecretStr(KEY))
        await provider.aclose()
        return provider._client.is_closed

    assert asyncio.run(main()) is True


def test_config_parses_from_a_routing_file_shape() -> None:
    config = OpenAIConfig.model_validate(
        {"type": "openai", "base_url": "http://localhost:11434/v1", "image_response_format": None}
    )
    assert config.image_response_format is None
    with pytest.raises(ValueError, match="extra"):
        OpenAIConfig.model_validate({"type": "openai", "api_base": "x"})


# --- attachments -----------------------------------------------------------------------------


def test_image_attachments_become_data_uri_parts_beside_the_text(server: ProviderServer) -> None:
    import base64
    import dataclasses

    from agents.inference.providers.base import Attachment

    png, jpeg = png_bytes(4, 4), b"\xff\xd8\xff\xe0fake-jpeg"
    server.script("POST", CHAT, [Reply(json=openai_chat_response('{"verdict": "pass"}'))])
    call = dataclasses.replace(
        make_call(AssetKind.JSON, prompt="Judge this image"),
        attachments=(Attachment(png, "image/png"), Attachment(jpeg, "Image/JPEG; q=1")),
    )
    _generate(server, call)

    system, user = _chat_body(server)["messages"]
    assert system["role"] == "system"
    assert isinstance(system["content"], str)
    assert user == {
        "role": "user",
        "content": [
            {"type": "text", "text": "Judge this image"},
            {
                "type": "image_url",
                "image_url": {"url": "data:image/png;base64," + base64.b64encode(png).decode()},
            },
            {
                "type": "image_url",
                "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()},
            },
        ],
    }


def test_non_image_attachments_are_unsupported_without_a_call(server: ProviderServer) -> None:
    import dataclasses

    from agents.inference.providers.base import Attachment

    call = dataclasses.replace(
        make_call(), attachments=(Attachment(b"%PDF-1.7", "application/pdf"),)
    )
    error = _fails(server, call)
    assert (error.code, error.retryable) == ("provider.unsupported", False)
    assert "application/pdf" in error.message
    assert server.requests == []


def test_image_generation_refuses_attachments_without_a_call(server: ProviderServer) -> None:
    import dataclasses

    from agents.inference.providers.base import Attachment

    call = dataclasses.replace(
        make_call(AssetKind.IMAGE), attachments=(Attachment(png_bytes(), "image/png"),)
    )
    assert _fails(server, call).code == "provider.unsupported"
    assert server.requests == []


def test_a_non_positive_image_size_is_refused_without_a_call(server: ProviderServer) -> None:
    server.script("POST", IMAGES, [Reply(json=openai_image_response(png_bytes()))])
    error = _fails(server, make_call(AssetKind.IMAGE, width=2147483647, height=-7))
    assert (error.code, error.retryable) == ("provider.bad_constraints", False)
    assert server.requests == []
