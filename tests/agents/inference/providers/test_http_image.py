"""The templated HTTP image adapter against a real local image endpoint."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import Callable
from typing import Any

import pytest
from PIL import Image
from pydantic import SecretStr, ValidationError

from agents.inference.providers.base import Generated, ProviderCall, ProviderError, Usage
from agents.inference.providers.http_image import HttpImageConfig, HttpImageProvider
from schemas.records import AssetKind
from tests.support.provider_calls import make_call
from tests.support.provider_server import ProviderServer, Reply, png_bytes

KEY = "img-key-SECRETSECRET0123456789"
PATH = "/generate"
BODY = {
    "input": {
        "prompt": "${prompt}",
        "model": "${model}",
        "width": "${width}",
        "height": "${height}",
        "seed": "${seed}",
        "output_format": "${format}",
    },
    "tags": ["assetline", "${request_id}", "${width}"],
    "label": "req ${request_id} at ${width}x${height}",
    "steps": 30,
    "safety": True,
}


def _config(server: ProviderServer, **overrides: Any) -> HttpImageConfig:
    raw: dict[str, Any] = {
        "type": "http_image",
        "url": server.url + PATH,
        "headers": {"Authorization": "Bearer ${api_key}", "X-Request-Id": "${request_id}"},
        "body": BODY,
    }
    raw.update(overrides)
    return HttpImageConfig.model_validate(raw)


def _generate(server: ProviderServer, call: ProviderCall, **overrides: Any) -> Generated:
    async def main() -> Generated:
        provider = HttpImageProvider("sdxl", _config(server, **overrides), SecretStr(KEY))
        try:
            return await provider.generate(call)
        finally:
            await provider.aclose()

    return asyncio.run(main())


def _fails(server: ProviderServer, call: ProviderCall, **overrides: Any) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        _generate(server, call, **overrides)
    return caught.value


def _image_call(**constraints: Any) -> ProviderCall:
    return make_call(
        AssetKind.IMAGE,
        model="sdxl-1.0",
        prompt="A red trail shoe",
        request_id="r-9",
        **constraints,
    )


def _sent(server: ProviderServer) -> dict[str, Any]:
    (seen,) = server.requests_to(PATH)
    assert isinstance(seen.json, dict)
    return seen.json


def test_fills_the_template_and_returns_the_body_image(server: ProviderServer) -> None:
    png = png_bytes(40, 30)
    server.script("POST", PATH, [Reply(body=png, content_type="image/png")])
    generated = _generate(server, _image_call(width=640, height=360, format="png"))

    assert generated == Generated(
        data=png,
        media_type="image/png",
        provider="sdxl",
        model_version="sdxl-1.0",
        usage=Usage(images=1),
    )
    body = _sent(server)
    seed = body["input"]["seed"]
    assert isinstance(seed, int)
    assert 0 <= seed < 2**31
    assert body == {
        "input": {
            "prompt": "A red trail shoe",
            "model": "sdxl-1.0",
            "width": 640,
            "height": 360,
            "seed": seed,
            "output_format": "png",
        },
        "tags": ["assetline", "r-9", 640],
        "label": "req r-9 at 640x360",
        "steps": 30,
        "safety": True,
    }
    headers = server.requests[0].headers
    assert headers["authorization"] == f"Bearer {KEY}"
    assert headers["x-request-id"] == "r-9"


def test_seed_depends_on_content_not_on_the_request_id(server: ProviderServer) -> None:
    server.script("POST", PATH, [Reply(body=png_bytes())])
    config = {"body": {"seed": "${seed}"}}
    for request_id in ("a", "b"):
        _generate(server, make_call(AssetKind.IMAGE, request_id=request_id), **config)
    first, second, *_ = (seen.json for seen in server.requests)
    assert first == second
    _generate(server, make_call(AssetKind.IMAGE, prompt="another creative"), **config)
    assert server.requests[-1].json != first


def test_unset_variables_drop_their_keys(server: ProviderServer) -> None:
    server.script("POST", PATH, [Reply(body=png_bytes())])
    body = {"width": "${width}", "format": "${format}", "list": ["${height}"], "p": "${prompt}"}
    _generate(server, _image_call(), body=body)
    assert _sent(server) == {"list": [None], "p": "A red trail shoe"}


def test_unset_variable_inside_text_is_a_bad_constraint(server: ProviderServer) -> None:
    error = _fails(server, _image_call(width=64))
    assert (error.code, error.retryable) == ("provider.bad_constraints", False)
    assert "'height'" in error.message
    assert server.requests == []


def test_media_type_from_the_magic_beats_the_header(server: ProviderServer) -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="JPEG")
    server.script("POST", PATH, [Reply(body=buffer.getvalue(), content_type="image/png")])
    assert _generate(server, _image_call(width=8, height=8)).media_type == "image/jpeg"


def test_media_type_from_the_header_when_the_magic_is_unknown(server: ProviderServer) -> None:
    server.script("POST", PATH, [Reply(body=b"GIF89a...", content_type="image/gif; q=1")])
    assert _generate(server, _image_call(width=8, height=8)).media_type == "image/gif"


def test_a_body_that_is_no_image_is_a_bad_response(server: ProviderServer) -> None:
    server.script("POST", PATH, [Reply(json={"status": "queued"})])
    error = _fails(server, _image_call(width=8, height=8))
    assert (error.code, error.retryable) == ("provider.bad_response", True)


@pytest.mark.parametrize(
    ("path", "wrap"),
    [
        ("images.0", lambda b64: {"images": [b64]}),
        ("images.0", lambda b64: {"images": [f"data:image/png;base64,{b64}"]}),
        ("result.artifacts.1.base64", lambda b64: {"result": {"artifacts": [{}, {"base64": b64}]}}),
    ],
)
def test_base64_json_responses(
    server: ProviderServer, path: str, wrap: Callable[[str], dict[str, Any]]
) -> None:
    png = png_bytes(12, 12)
    encoded = base64.b64encode(png).decode()
    wrapped = encoded[:20] + "\n" + encoded[20:]  # MIME-style line breaks are tolerated
    server.script("POST", PATH, [Reply(json=wrap(wrapped))])
    generated = _generate(
        server,
        _image_call(width=12, height=12),
        response={"kind": "base64_json", "path": path},
    )
    assert (generated.data, generated.media_type) == (png, "image/png")


@pytest.mark.parametrize(
    "reply",
    [
        Reply(json={"images": []}),
        Reply(json={"images": [42]}),
        Reply(json={"images": ["%%% not base64 %%%"]}),
        Reply(json={"images": [base64.b64encode(b"plain text").decode()]}),
        Reply(body=b"<html>oops</html>"),
    ],
)
def test_broken_base64_json_responses(server: ProviderServer, reply: Reply) -> None:
    server.script("POST", PATH, [reply])
    error = _fails(
        server,
        _image_call(width=8, height=8),
        response={"kind": "base64_json", "path": "images.0"},
    )
    assert (error.code, error.retryable) == ("provider.bad_response", True)


def test_451_is_a_refusal(server: ProviderServer) -> None:
    server.script("POST", PATH, [Reply(status=451, json={"error": "prompt flagged as unsafe"})])
    error = _fails(server, _image_call(width=8, height=8))
    assert (error.code, error.refusal, error.retryable) == ("provider.refused", True, False)
    assert "prompt flagged as unsafe" in error.message


def test_refusal_statuses_are_configurable(server: ProviderServer) -> None:
    server.script("POST", PATH, [Reply(status=422, json={"detail": "NSFW"}), Reply(status=451)])
    call = _image_call(width=8, height=8)
    assert _fails(server, call, refusal_statuses=[422]).refusal
    error = _fails(server, call, refusal_statuses=[422])
    assert (error.code, error.refusal) == ("provider.bad_request", False)


@pytest.mark.parametrize(
    ("status", "code"),
    [(400, "provider.bad_request"), (401, "provider.auth"), (503, "provider.unavailable")],
)
def test_error_statuses(server: ProviderServer, status: int, code: str) -> None:
    server.script("POST", PATH, [Reply(status=status, json={"error": "boom"})])
    assert _fails(server, _image_call(width=8, height=8)).code == code


def test_rate_limit_carries_retry_after(server: ProviderServer) -> None:
    server.script("POST", PATH, [Reply(status=429, headers={"Retry-After": "9"})])
    error = _fails(server, _image_call(width=8, height=8))
    assert (error.code, error.retry_after_s) == ("provider.rate_limited", 9.0)


def test_slow_answer_times_out(server: ProviderServer) -> None:
    server.script("POST", PATH, [Reply(body=png_bytes(), delay_s=0.6)])
    error = _fails(server, make_call(AssetKind.IMAGE, timeout_s=0.2), body={})
    assert (error.code, error.retryable) == ("provider.timeout", True)


def test_oversized_image_is_too_large(server: ProviderServer) -> None:
    server.script("POST", PATH, [Reply(body=png_bytes() + b"\0" * 100_000, chunked=True)])
    error = _fails(server, make_call(AssetKind.IMAGE), body={}, max_response_bytes=10_000)
    assert error.code == "provider.too_large"


def test_only_images(server: ProviderServer) -> None:
    error = _fails(server, make_call(AssetKind.TEXT))
    assert (error.code, error.retryable) == ("provider.unsupported", False)
    assert server.requests == []


def test_the_key_never_appears_in_errors(server: ProviderServer) -> None:
    replies = [
        Reply(status=401, json={"error": f"bad token Bearer {KEY}"}),
        Reply(status=451, body=KEY.encode()),
        Reply(status=500, json={"detail": KEY}),
    ]
    server.script("POST", PATH, replies)
    for _ in replies:
        error = _fails(server, make_call(AssetKind.IMAGE), body={})
        assert KEY not in str(error)
        assert KEY not in repr(error.args)


def test_unknown_placeholders_fail_validation() -> None:
    with pytest.raises(ValidationError, match=r"unknown placeholder.*promt"):
        HttpImageConfig(url="http://x", body={"p": "${promt}"})
    with pytest.raises(ValidationError, match=r"unknown placeholder.*prompt"):
        HttpImageConfig(url="http://x", headers={"X": "${prompt}"})
    with pytest.raises(ValidationError, match=r"unknown placeholder.*api_key"):
        HttpImageConfig(url="http://x", body={"key": "${api_key}"})  # keys stay out of bodies


def test_a_header_key_placeholder_needs_a_key() -> None:
    config = HttpImageConfig(url="http://x", headers={"Authorization": "Key ${api_key}"})
    with pytest.raises(ValueError, match="api_key"):
        HttpImageProvider("sdxl", config, None)
    asyncio.run(HttpImageProvider("sdxl", HttpImageConfig(url="http://x"), None).aclose())


@pytest.mark.parametrize(("width", "height"), [(2147483647, -7), (0, 64), (64, -1)])
def test_a_non_positive_size_is_refused_without_a_call(
    server: ProviderServer, width: int, height: int
) -> None:
    """Issue 12 #10: the template forwarded width=2147483647, height=-7 verbatim."""
    server.script("POST", PATH, [Reply(body=png_bytes(), content_type="image/png")])
    error = _fails(server, _image_call(width=width, height=height))
    assert (error.code, error.retryable) == ("provider.bad_constraints", False)
    assert server.requests == []
