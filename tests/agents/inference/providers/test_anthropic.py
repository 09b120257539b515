"""The Anthropic adapter against a real local server speaking the Messages API."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from pydantic import SecretStr

from agents.inference.providers.anthropic import AnthropicConfig, AnthropicProvider
from agents.inference.providers.base import Generated, ProviderCall, ProviderError, Usage
from schemas.records import AssetKind
from tests.support.provider_calls import make_call
from tests.support.provider_server import (
    ProviderServer,
    Reply,
    anthropic_error,
    anthropic_message,
)

KEY = "sk-ant-api03-SECRETSECRET0123456789"
MESSAGES = "/v1/messages"


def _generate(server: ProviderServer, call: ProviderCall, **config: Any) -> Generated:
    async def main() -> Generated:
        provider = AnthropicProvider(
            "claude", AnthropicConfig(base_url=server.url, **config), SecretStr(KEY)
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


def _body(server: ProviderServer) -> dict[str, Any]:
    (seen,) = server.requests_to(MESSAGES)
    assert isinstance(seen.json, dict)
    return seen.json


def test_text_request_and_answer(server: ProviderServer) -> None:
    reply = anthropic_message("Run further.", model="claude-sonnet-4-20250514")
    server.script("POST", MESSAGES, [Reply(json=reply)])
    call = make_call(
        model="claude-sonnet-4-20250514",
        max_output_tokens=300,
        params={"temperature": 0.3, "top_k": 5},
        language="de-DE",
    )
    generated = _generate(server, call, extra_headers={"anthropic-beta": "some-feature"})

    assert generated == Generated(
        data=b"Run further.",
        media_type="text/plain; charset=utf-8",
        provider="claude",
        model_version="claude-sonnet-4-20250514",
        usage=Usage(input_tokens=21, output_tokens=43),
    )
    body = _body(server)
    assert body["model"] == "claude-sonnet-4-20250514"
    assert body["max_tokens"] == 300
    assert body["messages"] == [{"role": "user", "content": call.prompt}]
    assert "de-DE" in body["system"]
    assert (body["temperature"], body["top_k"]) == (0.3, 5)
    headers = server.requests[0].headers
    assert headers["x-api-key"] == KEY
    assert headers["anthropic-version"] == "2023-06-01"
    assert headers["anthropic-beta"] == "some-feature"
    assert "authorization" not in headers


def test_max_tokens_defaults_because_the_api_requires_it(server: ProviderServer) -> None:
    server.script("POST", MESSAGES, [Reply(json=anthropic_message("hi"))])
    _generate(server, make_call(), api_version="2024-01-01")
    assert _body(server)["max_tokens"] == 1024
    assert server.requests[0].headers["anthropic-version"] == "2024-01-01"


def test_concatenates_text_blocks_only(server: ProviderServer) -> None:
    payload = anthropic_message("")
    payload["content"] = [
        {"type": "thinking", "thinking": "hmm", "signature": "x"},
        {"type": "text", "text": "Hello, "},
        {"type": "tool_use", "id": "t", "name": "f", "input": {}},
        {"type": "text", "text": "world."},
    ]
    server.script("POST", MESSAGES, [Reply(json=payload)])
    assert _generate(server, make_call()).data == b"Hello, world."


def test_json_puts_the_schema_in_the_system_prompt_and_strips_fences(
    server: ProviderServer,
) -> None:
    schema = json.dumps({"type": "object", "required": ["headline"]})
    reply = anthropic_message('```json\n{"headline": "Go"}\n```')
    server.script("POST", MESSAGES, [Reply(json=reply)])
    generated = _generate(server, make_call(AssetKind.JSON, json_schema=schema))
    assert json.loads(generated.data) == {"headline": "Go"}
    assert generated.media_type == "application/json"
    assert schema in _body(server)["system"]


def test_code_strips_the_fence(server: ProviderServer) -> None:
    reply = anthropic_message("```javascript\nconsole.log(1);\n```")
    server.script("POST", MESSAGES, [Reply(json=reply)])
    generated = _generate(server, make_call(AssetKind.CODE, language="javascript"))
    assert (generated.data, generated.media_type) == (
        b"console.log(1);",
        "application/javascript",
    )
    assert "javascript code" in _body(server)["system"]


def test_images_are_unsupported_without_a_call(server: ProviderServer) -> None:
    error = _fails(server, make_call(AssetKind.IMAGE))
    assert (error.code, error.retryable, error.refusal) == ("provider.unsupported", False, False)
    assert server.requests == []


def test_refusal_stop_reason_is_a_refusal_with_usage(server: ProviderServer) -> None:
    reply = anthropic_message("", input_tokens=15, output_tokens=2, stop_reason="refusal")
    server.script("POST", MESSAGES, [Reply(json=reply)])
    error = _fails(server, make_call())
    assert (error.code, error.refusal, error.retryable) == ("provider.refused", True, False)
    assert error.usage == Usage(input_tokens=15, output_tokens=2)


@pytest.mark.parametrize(
    ("status", "error_type", "code", "retryable"),
    [
        (400, "invalid_request_error", "provider.bad_request", False),
        (401, "authentication_error", "provider.auth", False),
        (403, "permission_error", "provider.auth", False),
        (404, "not_found_error", "provider.bad_request", False),
        (500, "api_error", "provider.unavailable", True),
        (529, "overloaded_error", "provider.unavailable", True),
    ],
)
def test_error_bodies(
    server: ProviderServer, status: int, error_type: str, code: str, retryable: bool
) -> None:
    body = anthropic_error(error_type, f"{error_type} happened")
    server.script("POST", MESSAGES, [Reply(status=status, json=body)])
    error = _fails(server, make_call())
    assert (error.code, error.retryable, error.refusal, error.status) == (
        code,
        retryable,
        False,
        status,
    )
    assert f"({error_type}): {error_type} happened" in error.message


def test_overloaded_carries_retry_after(server: ProviderServer) -> None:
    body = anthropic_error("overloaded_error", "Overloaded")
    server.script("POST", MESSAGES, [Reply(status=529, json=body, headers={"retry-after": "4"})])
    error = _fails(server, make_call())
    assert (error.code, error.retry_after_s) == ("provider.unavailable", 4.0)


@pytest.mark.parametrize(
    ("header", "expected"),
    [("12", 12.0), ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0), ("soon", None)],
)
def test_rate_limit_carries_retry_after(
    server: ProviderServer, header: str, expected: float | None
) -> None:
    body = anthropic_error("rate_limit_error", "Number of request tokens has exceeded your limit")
    server.script("POST", MESSAGES, [Reply(status=429, json=body, headers={"retry-after": header})])
    error = _fails(server, make_call())
    assert (error.code, error.retryable, error.retry_after_s) == (
        "provider.rate_limited",
        True,
        expected,
    )


@pytest.mark.parametrize(
    "reply",
    [
        Reply(body=b"upstream connect error", content_type="text/plain"),
        Reply(json=anthropic_message("")),
        Reply(json={"type": "message", "content": "not a list"}),
        Reply(json={"type": "message"}),
    ],
)
def test_unusable_answers_are_bad_responses(server: ProviderServer, reply: Reply) -> None:
    server.script("POST", MESSAGES, [reply])
    error = _fails(server, make_call())
    assert (error.code, error.retryable) == ("provider.bad_response", True)


def test_slow_answer_times_out(server: ProviderServer) -> None:
    server.script("POST", MESSAGES, [Reply(json=anthropic_message("late"), delay_s=0.6)])
    error = _fails(server, make_call(timeout_s=0.2))
    assert (error.code, error.retryable) == ("provider.timeout", True)


def test_oversized_answer_is_too_large(server: ProviderServer) -> None:
    server.script("POST", MESSAGES, [Reply(json=anthropic_message("x" * 20_000))])
    assert _fails(server, make_call(), max_response_bytes=4096).code == "provider.too_large"


def test_the_key_never_appears_in_errors(server: ProviderServer) -> None:
    echo = anthropic_error("authentication_error", f"invalid x-api-key: {KEY}")
    replies = [
        Reply(status=401, json=echo),
        Reply(status=529, json=echo),
        Reply(status=400, body=KEY.encode()),
        Reply(body=f"<html>{KEY}</html>".encode()),
    ]
    server.script("POST", MESSAGES, replies)
    for _ in replies:
        error = _fails(server, make_call())
        assert KEY not in str(error)
        assert KEY not in repr(error.args)
        assert "x-api-key: ***" in error.message or "x-api-key" not in error.message


# --- attachments -----------------------------------------------------------------------------


def test_image_attachments_become_base64_blocks_before_the_text(server: ProviderServer) -> None:
    import base64
    import dataclasses

    from agents.inference.providers.base import Attachment
    from tests.support.provider_server import png_bytes

    png = png_bytes(4, 4)
    server.script("POST", MESSAGES, [Reply(json=anthropic_message('{"verdict": "pass"}'))])
    call = dataclasses.replace(
        make_call(AssetKind.JSON, prompt="Judge this image"),
        attachments=(Attachment(png, "image/png"),),
    )
    generated = _generate(server, call)

    assert generated.data == b'{"verdict": "pass"}'
    assert _body(server)["messages"] == [
        {
            "role": "user",
            "content": [
                {
                    "type": "image",
                    "source": {
                        "type": "base64",
                        "media_type": "image/png",
                        "data": base64.b64encode(png).decode(),
                    },
                },
                {"type": "text", "text": "Judge this image"},
            ],
        }
    ]


def test_non_image_attachments_are_unsupported_without_a_call(server: ProviderServer) -> None:
    import dataclasses

    from agents.inference.providers.base import Attachment

    call = dataclasses.replace(make_call(), attachments=(Attachment(b"a,b\n1,2\n", "text/csv"),))
    error = _fails(server, call)
    assert (error.code, error.retryable) == ("provider.unsupported", False)
    assert "text/csv" in error.message
    assert server.requests == []
