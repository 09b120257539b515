"""generate_asset: route, fall back, store the blob; every outcome is a RawAsset."""

from __future__ import annotations

import asyncio
import hashlib
import io
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from prometheus_client import CollectorRegistry

from agents.deliver.completion import completion, ends_request, status_for_unapproved
from agents.generate.generate_one import GenerationOutcome, crashed, generate_asset
from agents.inference.providers.base import ProviderError
from agents.inference.providers.offline import OfflineProvider
from agents.inference.routing.budget import BudgetGuard, MemorySpendBook
from agents.inference.routing.config import (
    Alias,
    ChainEntry,
    Fallback,
    OfflineConfig,
    ProviderSpec,
    RoutingConfig,
)
from agents.inference.routing.fallback import FALLBACK_PROVIDER, FallbackAssets
from agents.inference.routing.metrics import ProviderMetrics
from agents.inference.routing.router import ModelRouter
from schemas.records import (
    AssetKind,
    CompletionStatus,
    Constraints,
    Disposition,
    GenerationRequest,
    ModelSpec,
    Verdict,
)
from streams.blobs import LocalBlobStore
from streams.codecs import Codecs
from streams.limits import AssetLimits
from streams.stage_io import STAGE_CRASHED
from tests.support.scripted_provider import ScriptedProvider

OFFLINE = OfflineProvider()


@pytest.fixture
def blobs(tmp_path: Path) -> LocalBlobStore:
    return LocalBlobStore(tmp_path / "blobs")


def request(**kw: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "request_id": "r-1",
        "idempotency_key": "k-1",
        "tenant": "acme",
        "campaign_id": "spring",
        "kind": AssetKind.IMAGE,
        "prompt_template": "A ${thing}",
        "variables": {"thing": "lighthouse"},
        "constraints": Constraints(width=64, height=48, format="png"),
    }
    fields.update(kw)
    return GenerationRequest(**fields)


def routing(
    fallback: Fallback | None = None, *, providers: tuple[str, ...] = ("p",)
) -> RoutingConfig:
    chain = [ChainEntry(provider=name, model=name, max_retries=0) for name in providers]
    return RoutingConfig(
        providers={n: ProviderSpec(adapter=OfflineConfig()) for n in (*providers, "offline")},
        aliases={
            "hero": Alias(chain=chain, fallback=fallback),
            "default": Alias(chain=[ChainEntry(provider="offline", model="offline")]),
        },
        default_alias="default",
    )


def run(
    req: GenerationRequest,
    config: RoutingConfig,
    blobs: LocalBlobStore,
    limits: AssetLimits | None = None,
    **adapters: Any,
) -> GenerationOutcome:
    adapters.setdefault("offline", OFFLINE)
    router = ModelRouter(
        config,
        adapters,
        BudgetGuard(config.budgets, MemorySpendBook()),
        ProviderMetrics.build(CollectorRegistry()),
    )
    fallbacks = FallbackAssets(config, OFFLINE)
    return asyncio.run(generate_asset(req, router, fallbacks, blobs, limits=limits))


def test_the_default_alias_serves_offline_and_stores_the_blob(blobs: LocalBlobStore) -> None:
    outcome = run(request(), routing(), blobs, p=ScriptedProvider("p"))
    raw = outcome.raw
    assert raw.error is None
    assert raw.blob is not None
    data = blobs.get(raw.blob)
    assert raw.blob.sha256 == hashlib.sha256(data).hexdigest()
    assert Image.open(io.BytesIO(data)).size == (64, 48)
    assert (raw.provider, raw.model_version, raw.alias) == ("offline", "offline-1", "default")
    assert [a.code for a in raw.attempts] == [None]
    assert not raw.fallback
    assert Codecs.load().raw.decode(Codecs.load().raw.encode(raw)) == raw


def test_the_served_provider_and_pinned_version_are_recorded(blobs: LocalBlobStore) -> None:
    config = routing()
    pinned = config.aliases["hero"].chain[0].model_copy(update={"version": "p-2024-01-01"})
    config = config.model_copy(
        update={"aliases": {**config.aliases, "hero": Alias(chain=[pinned])}}
    )
    outcome = run(request(model=ModelSpec(alias="hero")), config, blobs, p=ScriptedProvider("p"))
    assert (outcome.raw.provider, outcome.raw.model_version) == ("p", "p-2024-01-01")


def test_an_unknown_alias_becomes_a_failed_raw_asset(blobs: LocalBlobStore) -> None:
    outcome = run(request(model=ModelSpec(alias="nope")), routing(), blobs, p=ScriptedProvider("p"))
    assert outcome.raw.blob is None
    assert outcome.raw.error is not None
    assert outcome.raw.error.code == "routing.unknown_alias"
    assert "hero" in outcome.raw.error.message


def test_all_failing_with_a_placeholder_fallback_is_a_fallback_asset(
    blobs: LocalBlobStore,
) -> None:
    dead = ScriptedProvider("p", [ProviderError("provider.unavailable", "down", retryable=True)])
    outcome = run(
        request(model=ModelSpec(alias="hero")), routing(Fallback(placeholder=True)), blobs, p=dead
    )
    raw = outcome.raw
    assert raw.fallback
    assert raw.error is None
    assert raw.blob is not None
    assert raw.blob.media_type == "image/png"
    assert raw.provider == FALLBACK_PROVIDER
    assert raw.model_version == "placeholder"
    assert [a.code for a in raw.attempts] == ["provider.unavailable"]
    assert [a.kind.value for a in outcome.alerts] == ["ALL_PROVIDERS_FAILED"]


def test_a_file_fallback_is_read_once_and_delivered_as_is(
    blobs: LocalBlobStore, tmp_path: Path
) -> None:
    cached = tmp_path / "hero.webp"
    buffer = io.BytesIO()
    Image.new("RGB", (10, 10), (1, 2, 3)).save(buffer, "WEBP")
    cached.write_bytes(buffer.getvalue())
    dead = ScriptedProvider("p", [ProviderError("provider.auth", "bad key")])
    config = routing(Fallback(file=cached))
    outcome = run(request(model=ModelSpec(alias="hero")), config, blobs, p=dead)
    assert outcome.raw.blob is not None
    assert outcome.raw.blob.media_type == "image/webp"
    assert blobs.get(outcome.raw.blob) == buffer.getvalue()
    assert outcome.raw.model_version == "file:hero.webp"


def test_text_fallback(blobs: LocalBlobStore) -> None:
    dead = ScriptedProvider("p", [ProviderError("provider.auth", "bad key")])
    req = request(kind=AssetKind.TEXT, constraints=Constraints(), model=ModelSpec(alias="hero"))
    outcome = run(req, routing(Fallback(text="Offers every day.")), blobs, p=dead)
    assert outcome.raw.blob is not None
    assert blobs.get(outcome.raw.blob) == b"Offers every day."


def test_failure_without_fallback_keeps_the_cost_and_attempts(blobs: LocalBlobStore) -> None:
    dead = ScriptedProvider("p", [ProviderError("provider.bad_request", "nope")])
    outcome = run(request(model=ModelSpec(alias="hero")), routing(), blobs, p=dead)
    raw = outcome.raw
    assert raw.error is not None
    assert raw.error.code == "provider.bad_request"
    assert raw.provider == "p"
    assert [a.code for a in raw.attempts] == ["provider.bad_request"]


def test_a_bad_request_for_the_offline_provider_keeps_its_code(blobs: LocalBlobStore) -> None:
    req = request(constraints=Constraints(width=10, height=10, format="tiff"))
    outcome = run(req, routing(), blobs, p=ScriptedProvider("p"))
    assert outcome.raw.error is not None
    assert outcome.raw.error.code == "provider.bad_constraints"


def test_a_non_positive_image_size_is_refused_before_routing(blobs: LocalBlobStore) -> None:
    """Issue 12 #10: checked once for every provider, before any of them is called."""
    req = request(model=ModelSpec(alias="hero"), constraints=Constraints(width=0, height=10))
    never = ScriptedProvider("p")
    outcome = run(req, routing(), blobs, p=never)
    assert outcome.raw.error is not None
    assert outcome.raw.error.code == "request.bad_image_size"
    assert never.calls == []


def test_blob_write_failure_is_a_retryable_error(
    blobs: LocalBlobStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(data: bytes, media_type: str, **limits: Any) -> Any:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(blobs, "put", refuse)
    outcome = run(request(), routing(), blobs, p=ScriptedProvider("p"))
    assert outcome.raw.error is not None
    assert outcome.raw.error.code == "blob.write_failed"
    assert outcome.raw.error.retryable
    assert [a.code for a in outcome.raw.attempts] == [None]


def test_an_asset_over_its_kinds_cap_is_not_stored(blobs: LocalBlobStore) -> None:
    """Issue 12 #4: the blob store refuses an asset over the cap; the request fails with
    asset.too_large (final: a retry would make the same bytes)."""
    outcome = run(request(), routing(), blobs, AssetLimits(image=100), p=ScriptedProvider("p"))
    error = outcome.raw.error
    assert error is not None
    assert error.code == "asset.too_large"
    assert not error.retryable
    assert "exceed the cap of 100 bytes" in error.message
    assert not any(path.is_file() for path in blobs.root.rglob("*"))  # nothing written
    same = run(request(), routing(), blobs, AssetLimits(image=10_000), p=ScriptedProvider("p"))
    assert same.raw.blob is not None  # the same image under a larger cap is stored


def test_latency_is_measured_with_the_injected_clock(blobs: LocalBlobStore) -> None:
    ticks: Iterator[float] = itertools.count(10.0, 0.25)
    config = routing()
    router = ModelRouter(
        config,
        {"offline": OFFLINE, "p": ScriptedProvider("p")},
        BudgetGuard(config.budgets, MemorySpendBook()),
        ProviderMetrics.build(CollectorRegistry()),
    )
    outcome = asyncio.run(
        generate_asset(
            request(), router, FallbackAssets(config, OFFLINE), blobs, clock=lambda: next(ticks)
        )
    )
    assert outcome.raw.latency_ms == pytest.approx(250.0)


def test_a_refused_request_is_an_encodable_failed_raw_asset_without_a_call() -> None:
    from agents.generate.generate_one import refused

    raw = refused(request(brand_profile_id="globex"), "request.profile_forbidden", "not yours")
    assert raw.error is not None
    assert (raw.error.code, raw.error.retryable) == ("request.profile_forbidden", False)
    assert raw.blob is None
    assert raw.attempts == []
    assert raw.cost == 0.0
    codecs = Codecs.load()
    assert codecs.raw.decode(codecs.raw.encode(raw)) == raw


def test_a_crashed_generation_is_a_final_error_that_deliver_completes_failed() -> None:
    """Issue 14 #1: the record generate publishes to ``.rejected`` when its step crashed."""
    req = request(kind=AssetKind.TEXT)
    asset = crashed(req, "generate: RecordValidationError: cannot encode", cost=0.25)
    assert asset.disposition is Disposition.REJECTED
    assert asset.report.verdict is Verdict.ERROR
    assert asset.raw.request == req
    assert asset.raw.blob is None
    assert asset.raw.error is not None
    assert asset.raw.error.code == STAGE_CRASHED
    Codecs.load().validated.encode(asset)  # it travels on .rejected
    assert ends_request(asset)
    done = completion(asset, status_for_unapproved(asset))
    assert done.status is CompletionStatus.FAILED
    assert done.reasons == ["stage.crashed: generate: RecordValidationError: cannot encode"]
    assert done.cost == 0.25  # what was spent before the crash is still reported
