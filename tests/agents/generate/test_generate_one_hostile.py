"""generate_asset against hostile configuration and requests (issue 12 #5, #10).

Real adapters against a real local server: a key with a trailing newline must not reach the
raw record's error, its attempts or its alerts in any escaped form, and an absurd image size
must end FAILED with a code before any provider is called.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from prometheus_client import CollectorRegistry
from pydantic import SecretStr

from agents.generate.generate_one import GenerationOutcome, generate_asset
from agents.inference.providers.base import ProviderError
from agents.inference.providers.http_image import HttpImageConfig, HttpImageProvider
from agents.inference.providers.offline import OfflineProvider
from agents.inference.providers.openai import OpenAIConfig, OpenAIProvider
from agents.inference.routing.budget import BudgetGuard, MemorySpendBook
from agents.inference.routing.config import Alias, ChainEntry, ProviderSpec, RoutingConfig
from agents.inference.routing.fallback import FallbackAssets
from agents.inference.routing.metrics import ProviderMetrics
from agents.inference.routing.router import ModelRouter
from schemas.records import AssetKind, Constraints, GenerationRequest, ModelSpec
from streams.blobs import LocalBlobStore
from streams.limits import BAD_IMAGE_SIZE, AssetLimits
from tests.support.provider_server import (
    ProviderServer,
    Reply,
    openai_chat_response,
    png_bytes,
    provider_server,
)
from tests.support.scripted_provider import ScriptedProvider

KEY = "sk-live-TRAILING-NEWLINE-0123456789\n"
CHAT = "/v1/chat/completions"


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    with provider_server() as started:
        yield started


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def _request(kind: AssetKind = AssetKind.TEXT, **constraints: Any) -> GenerationRequest:
    return GenerationRequest(
        request_id="r-hostile",
        idempotency_key="k-hostile",
        tenant="acme",
        campaign_id="spring",
        kind=kind,
        prompt_template="A headline about ${thing}",
        variables={"thing": "lighthouses"},
        constraints=Constraints(**constraints),
        model=ModelSpec(alias="main"),
    )


def _config(*providers: str) -> RoutingConfig:
    return RoutingConfig(
        providers={name: ProviderSpec(adapter={"type": "offline"}) for name in providers},
        aliases={
            "main": Alias(chain=[ChainEntry(provider=n, model=n, max_retries=0) for n in providers])
        },
        default_alias="main",
    )


def _generate(
    request: GenerationRequest,
    adapters: dict[str, Any],
    blobs: LocalBlobStore,
    limits: AssetLimits | None = None,
) -> GenerationOutcome:
    config = _config(*adapters)

    async def main() -> GenerationOutcome:
        router = ModelRouter(
            config,
            adapters,
            BudgetGuard(config.budgets, MemorySpendBook()),
            ProviderMetrics.build(CollectorRegistry()),
        )
        try:
            return await generate_asset(
                request, router, FallbackAssets(config, OfflineProvider()), blobs, limits=limits
            )
        finally:
            for adapter in adapters.values():
                aclose = getattr(adapter, "aclose", None)
                if aclose is not None:
                    await aclose()

    return asyncio.run(main())


def _every_text(outcome: GenerationOutcome) -> list[str]:
    raw = outcome.raw
    texts = [raw.error.message if raw.error else ""]
    texts += [attempt.message or "" for attempt in raw.attempts]
    for alert in outcome.alerts:
        texts += [alert.message, *alert.details.values()]
    texts.append(json.dumps(raw.model_dump(mode="json")))  # what the completion is built from
    return texts


def _forms(key: str) -> list[str]:
    core = key.strip()
    return [
        core,
        core[:12],
        repr(key)[1:-1],
        json.dumps(key)[1:-1],
        quote(key, safe=""),
        base64.b64encode(f"user:{core}".encode()).decode()[8:-4],
    ]


def test_a_key_with_a_newline_never_reaches_the_record_or_alerts(
    server: ProviderServer, blobs: LocalBlobStore
) -> None:
    """Issue 12 #5: httpx rejected the header and its text (the key, repr-escaped) leaked."""
    server.script("POST", CHAT, [Reply(json=openai_chat_response("never sent"))])
    leaky = OpenAIProvider("openai", OpenAIConfig(base_url=server.url + "/v1"), SecretStr(KEY))
    # a second rung whose error quotes the first one's key: the last scrub catches that too
    echo = ScriptedProvider(
        "proxy",
        [ProviderError("provider.auth", f"proxy: upstream said {KEY!r} / {json.dumps(KEY)}")],
    )
    outcome = _generate(_request(), {"openai": leaky, "proxy": echo}, blobs)

    raw = outcome.raw
    assert raw.error is not None
    assert [a.code for a in raw.attempts] == ["provider.bad_header", "provider.auth"]
    assert outcome.alerts  # all providers failed: an alert that quotes the last message
    assert server.requests == []  # the bad header never went on the wire
    for text in _every_text(outcome):
        for form in _forms(KEY):
            assert form not in text


@pytest.mark.parametrize(
    ("width", "height", "why"),
    [
        (2147483647, -7, "height must be at least 1"),
        (0, 512, "width must be at least 1"),
        (512, 100_000, "exceeds the largest side"),
        (8000, 8000, "exceeds the pixel cap"),
    ],
)
def test_an_absurd_image_size_fails_before_any_provider_call(
    server: ProviderServer, blobs: LocalBlobStore, width: int, height: int, why: str
) -> None:
    """Issue 12 #10: http_image forwarded width=2147483647, height=-7 to the endpoint."""
    server.script("POST", "/generate", [Reply(body=png_bytes(), content_type="image/png")])
    server.script("POST", "/v1/images/generations", [Reply(status=500)])
    http_image = HttpImageProvider(
        "diffusion",
        HttpImageConfig(
            url=server.url + "/generate",
            body={"prompt": "${prompt}", "width": "${width}", "height": "${height}"},
        ),
        None,
    )
    openai = OpenAIProvider("openai", OpenAIConfig(base_url=server.url + "/v1"), None)
    limits = AssetLimits(image_pixels=40_000_000, image_side=8192)
    outcome = _generate(
        _request(AssetKind.IMAGE, width=width, height=height),
        {"diffusion": http_image, "openai": openai},
        blobs,
        limits,
    )
    raw = outcome.raw
    assert raw.error is not None
    assert (raw.error.code, raw.error.retryable) == (BAD_IMAGE_SIZE, False)
    assert why in raw.error.message
    assert raw.attempts == []
    assert raw.blob is None
    assert server.requests == []  # no provider saw the request


def test_a_size_within_the_limits_is_served(server: ProviderServer, blobs: LocalBlobStore) -> None:
    server.script("POST", "/generate", [Reply(body=png_bytes(16, 8), content_type="image/png")])
    http_image = HttpImageProvider(
        "diffusion",
        HttpImageConfig(url=server.url + "/generate", body={"w": "${width}", "h": "${height}"}),
        None,
    )
    outcome = _generate(
        _request(AssetKind.IMAGE, width=16, height=8), {"diffusion": http_image}, blobs
    )
    assert outcome.raw.error is None
    (seen,) = server.requests
    assert seen.json == {"w": 16, "h": 8}
