"""OfflineProvider: the Provider protocol, request validation, determinism, off-loop rendering."""

from __future__ import annotations

import ast
import asyncio
import inspect
import io
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import jsonschema
import pytest
from PIL import Image

from agents.inference.prompt import render_prompt
from agents.inference.providers.base import Generated, Provider, ProviderCall, ProviderError, Usage
from agents.inference.providers.offline import OfflineProvider, content_seed
from agents.inference.providers.offline import provider as provider_module
from agents.inference.providers.offline.image import render_image
from schemas.records import AssetKind, Constraints, GenerationRequest, ModelSpec
from streams.limits import AssetLimits

PROMPT = "Autumn launch of ${product} for ${persona}"


def _request(
    kind: AssetKind = AssetKind.IMAGE,
    constraints: dict[str, Any] | None = None,
    variables: dict[str, str] | None = None,
    version: str | None = None,
    **fields: Any,
) -> GenerationRequest:
    base: dict[str, Any] = {
        "request_id": "req-1",
        "idempotency_key": "idem-1",
        "tenant": "acme",
        "campaign_id": "autumn",
        "kind": kind,
        "prompt_template": PROMPT,
        "variables": {"product": "Trail X2", "persona": "hikers", "locale": "de-DE"}
        if variables is None
        else variables,
        "constraints": Constraints(**(constraints or {})),
        "model": ModelSpec(version=version),
    }
    return GenerationRequest(**{**base, **fields})


def _call(request: GenerationRequest) -> ProviderCall:
    """What routing sends: the pinned version, or the family name meaning the default."""
    return ProviderCall(request, render_prompt(request), request.model.version or "offline")


def _generate(request: GenerationRequest, provider: OfflineProvider | None = None) -> Generated:
    return asyncio.run((provider or OfflineProvider()).generate(_call(request)))


def _error(request: GenerationRequest, provider: OfflineProvider | None = None) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        _generate(request, provider)
    return caught.value


def test_satisfies_the_provider_protocol() -> None:
    provider: Provider = OfflineProvider()  # checked statically by mypy
    assert provider.name == "offline"
    assert inspect.iscoroutinefunction(provider.generate)


# --- images -----------------------------------------------------------------------------------


def test_image_defaults_to_a_512_square_png() -> None:
    generated = _generate(_request())
    image = Image.open(io.BytesIO(generated.data))
    assert (image.format, image.size) == ("PNG", (512, 512))
    assert generated.media_type == "image/png"
    assert generated.provider == "offline"
    assert generated.model_version == "offline-1"
    assert generated.usage == Usage(images=1)


@pytest.mark.parametrize(
    ("fmt", "pil_format", "media_type"),
    [
        ("png", "PNG", "image/png"),
        ("JPEG", "JPEG", "image/jpeg"),
        ("jpg", "JPEG", "image/jpeg"),
        ("webp", "WEBP", "image/webp"),
    ],
)
def test_image_format_and_size(fmt: str, pil_format: str, media_type: str) -> None:
    generated = _generate(_request(constraints={"width": 320, "height": 200, "format": fmt}))
    image = Image.open(io.BytesIO(generated.data))
    assert (image.format, image.size) == (pil_format, (320, 200))
    assert generated.media_type == media_type


def test_missing_side_defaults_to_512() -> None:
    generated = _generate(_request(constraints={"width": 100}))
    assert Image.open(io.BytesIO(generated.data)).size == (100, 512)


@pytest.mark.parametrize(
    "constraints",
    [
        {"width": 0, "height": 10},
        {"width": 10, "height": -1},
        {"width": 8193, "height": 10},
        {"width": 10, "height": 8193},
        {"width": 8000, "height": 6000},  # 48 M pixels > 40 M
        {"format": "gif"},
        {"format": ""},
    ],
)
def test_bad_image_constraints(constraints: dict[str, Any]) -> None:
    error = _error(_request(constraints=constraints))
    assert error.code == "provider.bad_constraints"
    assert not error.retryable


def test_limits_are_configurable() -> None:
    provider = OfflineProvider(max_pixels=10_000, max_side=150)
    assert _generate(_request(constraints={"width": 100, "height": 100}), provider)
    assert _error(_request(constraints={"width": 101, "height": 100}), provider).code == (
        "provider.bad_constraints"
    )
    assert _error(_request(constraints={"width": 151, "height": 10}), provider).code == (
        "provider.bad_constraints"
    )


def test_limits_must_be_positive() -> None:
    with pytest.raises(ValueError):
        OfflineProvider(max_pixels=0)


def test_encoder_failure_is_a_provider_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object) -> bytes:
        raise OSError("encoder error -2")

    monkeypatch.setattr(provider_module, "render_image", broken)
    error = _error(_request())
    assert error.code == "provider.render_failed"
    assert not error.retryable


# --- text, JSON, code -------------------------------------------------------------------------


def test_text_is_utf8_copy_within_max_chars() -> None:
    generated = _generate(_request(AssetKind.TEXT, constraints={"max_chars": 30}))
    text = generated.data.decode("utf-8")
    assert 0 < len(text) <= 30
    assert generated.media_type == "text/plain; charset=utf-8"
    assert generated.usage == Usage()


@pytest.mark.parametrize("locale", ["en-US", "de-DE", "fr-FR", "es-ES", "pt-BR"])
@pytest.mark.parametrize("max_chars", [1, 7, 20, 45, 1000])
def test_text_respects_max_chars_in_every_locale(locale: str, max_chars: int) -> None:
    variables = {"product": "Trail X2", "persona": "Wanderfreunde", "locale": locale}
    request = _request(AssetKind.TEXT, {"max_chars": max_chars}, variables)
    text = _generate(request).data.decode("utf-8")
    assert 0 < len(text) <= max_chars
    assert text.strip()


def test_text_locale_falls_back_to_constraints_language() -> None:
    variables = {"product": "Trail X2", "persona": "randonneurs"}
    request = _request(AssetKind.TEXT, {"language": "fr-FR"}, variables)
    assert "pour randonneurs" in _generate(request).data.decode("utf-8")


@pytest.mark.parametrize("max_chars", [0, -5])
def test_non_positive_max_chars_is_a_bad_constraint(max_chars: int) -> None:
    error = _error(_request(AssetKind.TEXT, constraints={"max_chars": max_chars}))
    assert error.code == "provider.bad_constraints"


def test_json_matches_the_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "headline": {"type": "string", "maxLength": 40},
            "persona": {"type": "string"},
            "rating": {"type": "integer", "minimum": 1, "maximum": 5},
            "tags": {"type": "array", "items": {"type": "string"}, "minItems": 2},
        },
        "required": ["headline", "persona", "rating", "tags"],
        "additionalProperties": False,
    }
    request = _request(AssetKind.JSON, constraints={"json_schema": json.dumps(schema)})
    generated = _generate(request)
    document = json.loads(generated.data)
    jsonschema.Draft202012Validator(schema).validate(document)
    assert document["persona"] == "hikers"
    assert generated.media_type == "application/json"
    assert generated.usage == Usage()


def test_json_without_schema_is_still_json() -> None:
    assert json.loads(_generate(_request(AssetKind.JSON)).data)["locale"] == "de-DE"


def test_invalid_json_schema_is_a_bad_constraint() -> None:
    error = _error(_request(AssetKind.JSON, constraints={"json_schema": "{oops"}))
    assert error.code == "provider.bad_constraints"


@pytest.mark.parametrize(
    ("language", "media_type"),
    [
        (None, "text/x-python"),
        ("python", "text/x-python"),
        ("javascript", "application/javascript"),
        ("js", "application/javascript"),
        ("json", "application/json"),
    ],
)
def test_code_media_types(language: str | None, media_type: str) -> None:
    generated = _generate(_request(AssetKind.CODE, constraints={"language": language}))
    assert generated.media_type == media_type
    if media_type == "text/x-python":
        ast.parse(generated.data.decode("utf-8"))
    if media_type == "application/json":
        json.loads(generated.data)


def test_unknown_code_language() -> None:
    error = _error(_request(AssetKind.CODE, constraints={"language": "brainfuck"}))
    assert error.code == "provider.unsupported_language"


# --- versions ---------------------------------------------------------------------------------


def test_pinned_offline_version_is_echoed() -> None:
    assert _generate(_request(AssetKind.TEXT, version="offline-7")).model_version == "offline-7"


@pytest.mark.parametrize("version", ["gpt-4o", "offline-", "offline2", "1"])
def test_unknown_version_is_rejected(version: str) -> None:
    assert _error(_request(version=version)).code == "provider.unknown_version"


def test_the_family_name_means_the_default_version() -> None:
    assert _generate(_request(version="offline")).model_version == "offline-1"


def test_default_and_explicit_default_version_give_the_same_bytes() -> None:
    implicit = _generate(_request())
    explicit = _generate(_request(version="offline-1"))
    assert implicit.data == explicit.data


def test_version_changes_the_bytes() -> None:
    assert _generate(_request()).data != _generate(_request(version="offline-2")).data


# --- determinism ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(AssetKind))
def test_bytes_depend_only_on_content(kind: AssetKind) -> None:
    first = _generate(_request(kind))
    again = _generate(
        _request(
            kind,
            request_id="req-2",
            idempotency_key="idem-2",
            tenant="globex",
            campaign_id="spring",
            attempt=3,
            created_at=datetime(2020, 1, 1, tzinfo=UTC),
            metadata={"x": "y"},
            brand_profile_id="brand-9",
        )
    )
    assert first.data == again.data


@pytest.mark.parametrize("kind", list(AssetKind))
def test_different_persona_gives_different_bytes(kind: AssetKind) -> None:
    other = {"product": "Trail X2", "persona": "city commuters", "locale": "de-DE"}
    assert _generate(_request(kind)).data != _generate(_request(kind, variables=other)).data


def test_content_seed_ignores_unset_constraints_and_variable_order() -> None:
    a = _request(variables={"a": "1", "b": "2"})
    b = _request(variables={"b": "2", "a": "1"}, request_id="other")
    assert content_seed(a, "offline-1") == content_seed(b, "offline-1")
    assert 0 <= content_seed(a, "offline-1") < 2**64
    assert content_seed(a, "offline-1") != content_seed(a, "offline-2")


# --- concurrency ------------------------------------------------------------------------------


def test_rendering_runs_off_the_event_loop_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []

    def spy(*args: Any) -> bytes:
        threads.append(threading.get_ident())
        return render_image(*args)

    monkeypatch.setattr(provider_module, "render_image", spy)

    async def main() -> int:
        await OfflineProvider().generate(_call(_request()))
        return threading.get_ident()

    loop_thread = asyncio.run(main())
    assert threads
    assert threads[0] != loop_thread


def test_uses_the_given_executor() -> None:
    class Counting(ThreadPoolExecutor):
        submitted = 0

        def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
            Counting.submitted += 1
            return super().submit(fn, *args, **kwargs)

    with Counting(max_workers=2) as executor:
        provider = OfflineProvider(executor=executor)
        _generate(_request(AssetKind.TEXT), provider)
        _generate(_request(), provider)
    assert Counting.submitted == 2


def test_concurrent_requests_on_one_loop() -> None:
    personas = [f"persona {index}" for index in range(12)]

    async def main() -> list[Generated]:
        provider = OfflineProvider()
        requests = [
            _request(variables={"product": "X", "persona": persona, "locale": "en-US"})
            for persona in personas
        ]
        return await asyncio.gather(*(provider.generate(_call(request)) for request in requests))

    results = asyncio.run(main())
    assert len({result.data for result in results}) == len(personas)
    serial = _generate(
        _request(variables={"product": "X", "persona": personas[0], "locale": "en-US"})
    )
    assert results[0].data == serial.data


def test_feedback_changes_the_seed_and_no_feedback_keeps_it() -> None:
    plain = GenerationRequest(
        request_id="r",
        idempotency_key="k",
        tenant="t",
        campaign_id="c",
        kind=AssetKind.TEXT,
        prompt_template="Copy",
    )
    retry = plain.model_copy(update={"attempt": 2, "feedback": ["text.prohibited: 'free'"]})
    assert content_seed(plain, "offline-1") != content_seed(retry, "offline-1")
    # attempt alone is not content: a replay of the same request renders the same bytes
    assert content_seed(plain, "offline-1") == content_seed(
        plain.model_copy(update={"attempt": 2}), "offline-1"
    )


def test_an_asset_over_its_kinds_cap_is_refused() -> None:
    """Issue 12 #4: caps per kind; the JSON builder gets its cap and stops before building."""
    capped = OfflineProvider(limits=AssetLimits(text=10, json=1000, code=10, image=100))
    for kind in (AssetKind.TEXT, AssetKind.CODE, AssetKind.IMAGE):
        error = _error(_request(kind), capped)
        assert error.code == "asset.too_large", kind
        assert not error.retryable
    schema = {"type": "array", "minItems": 10, "items": {"type": "string", "minLength": 100}}
    error = _error(
        _request(AssetKind.JSON, constraints={"json_schema": json.dumps(schema)}), capped
    )
    assert error.code == "asset.too_large"
    assert "at least 1032 bytes" in str(error)  # refused from the schema, nothing built
    assert _generate(_request(AssetKind.TEXT)).data  # the default caps leave room
