"""Shadow versions in the generate stage: the mirror's copy, its spend lane, and its isolation."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agents.generate.finished import REUSED_HEADER, Reuse, reuse_metrics
from agents.generate.generate_one import GenerationOutcome, generate_asset
from agents.generate.shadow import ShadowMetrics, Shadows
from agents.inference.providers.base import ProviderError, Usage
from agents.inference.providers.offline import OfflineProvider
from agents.inference.routing.budget import BudgetGuard, MemorySpendBook
from agents.inference.routing.config import RoutingConfig, parse_routing
from agents.inference.routing.fallback import FallbackAssets
from agents.inference.routing.metrics import ProviderMetrics
from agents.inference.routing.router import ModelRouter
from agents.inference.routing.spend import GENERATE_LANE, SHADOW_LANE
from agents.inference.routing.versions import CANARY, PRIMARY, SHADOW_HEADER, rung_of, shadow_of
from schemas.records import AssetKind, GenerationRequest, ModelSpec, RawAsset
from streams.blobs import LocalBlobStore
from streams.codecs import Codecs
from streams.limits import AssetLimits
from tests.support.scripted_provider import ScriptedProvider, served

ROUTING = """
providers:
  main: {type: offline}
  next: {type: offline}
  shade: {type: offline}
aliases:
  copy:
    chain: [{provider: main, model: main, version: main-1, max_retries: 0}]
    canary: {provider: next, model: next, version: next-2, share: %(canary)s, max_retries: 0}
    shadow: {provider: shade, model: shade, version: shade-3, share: %(shadow)s, max_retries: 0,
             price: {output_per_1k: 1.0}}
default_alias: copy
"""


def routing(canary: float = 0.3, shadow: float = 1.0) -> RoutingConfig:
    return parse_routing(ROUTING % {"canary": canary, "shadow": shadow}, ".yaml")


def request(request_id: str = "r-1", attempt: int = 1) -> GenerationRequest:
    return GenerationRequest(
        request_id=request_id,
        idempotency_key="k",
        tenant="acme",
        campaign_id="spring",
        kind=AssetKind.TEXT,
        prompt_template="Say hello",
        model=ModelSpec(alias="copy"),
        attempt=attempt,
    )


class Line:
    """What the generate stage gives the shadows: a router over scripted providers, blobs,
    and the records sent."""

    def __init__(
        self, tmp: Path, config: RoutingConfig, reuse: Reuse | None = None, **adapters: Any
    ):
        self.book = MemorySpendBook()
        self.providers = {
            "main": ScriptedProvider("main"),
            "next": ScriptedProvider("next"),
            "shade": ScriptedProvider("shade", [served("shade", Usage(output_tokens=500))]),
            **adapters,
        }
        self.router = ModelRouter(
            config,
            self.providers,
            BudgetGuard(config.budgets, self.book),
            ProviderMetrics.build(CollectorRegistry()),
        )
        self.blobs = LocalBlobStore(tmp / "blobs")
        self.metrics = ShadowMetrics.build(CollectorRegistry())
        self.shadows = Shadows(config, self.router, self.blobs, AssetLimits(), self.metrics, reuse)
        self.sent: list[tuple[RawAsset, list[tuple[str, bytes]]]] = []
        self.alerted: list[GenerationOutcome] = []

    async def send_raw(self, raw: RawAsset, headers: list[tuple[str, bytes]]) -> None:
        self.sent.append((raw, headers))

    async def send_alerts(self, outcome: GenerationOutcome) -> None:
        self.alerted.append(outcome)

    def mirror(self, req: GenerationRequest) -> bool:
        return asyncio.run(self.shadows.mirror(req, b"value", self.send_raw, self.send_alerts))

    def count(self, outcome: str) -> float:
        return float(self.metrics.generations.labels("copy", outcome)._value.get())


def test_a_mirrored_request_gets_one_shadow_copy_booked_in_the_shadow_lane(tmp_path: Path) -> None:
    line = Line(tmp_path, routing())
    assert line.mirror(request())
    [(raw, headers)] = line.sent
    assert raw.rung == "shadow"
    assert (raw.provider, raw.model_version, raw.alias) == ("shade", "shade-3", "copy")
    assert (raw.request.request_id, raw.request.attempt) == ("r-1", 1)
    assert raw.blob is not None
    assert line.blobs.get(raw.blob) == b"asset"
    assert raw.cost == pytest.approx(0.5)  # 500 output tokens at 1.0 per 1,000
    assert (SHADOW_HEADER, b"true") in headers
    assert line.book.lanes["tenant:acme", SHADOW_LANE] == pytest.approx(0.5)
    assert line.book.lanes["tenant:acme", GENERATE_LANE] == 0.0
    assert [c.model for c in line.providers["shade"].calls] == ["shade-3"]
    assert not line.providers["main"].calls
    assert Codecs.load().raw.decode(Codecs.load().raw.encode(raw)) == raw
    assert line.count("ok") == 1


def test_requests_outside_the_share_and_re_generations_are_not_mirrored(tmp_path: Path) -> None:
    line = Line(tmp_path, routing(shadow=0.0))
    assert not line.mirror(request())
    everyone = Line(tmp_path, routing(shadow=1.0))
    assert not everyone.mirror(request(attempt=2))
    assert not line.sent
    assert not everyone.sent
    assert not everyone.providers["shade"].calls


def test_a_failing_shadow_model_is_a_shadow_error_record(tmp_path: Path) -> None:
    dead = ScriptedProvider(
        "shade", [ProviderError("provider.unavailable", "down", retryable=True)]
    )
    line = Line(tmp_path, routing(), shade=dead)
    assert line.mirror(request())
    [(raw, _)] = line.sent
    assert raw.rung == "shadow"
    assert raw.error is not None
    assert raw.error.code == "provider.unavailable"
    assert line.count("error") == 1


def test_a_shadow_that_breaks_never_raises_into_the_primary(tmp_path: Path) -> None:
    line = Line(tmp_path, routing())

    async def broken(raw: RawAsset, headers: list[tuple[str, bytes]]) -> None:
        raise RuntimeError("the broker refused it")

    sent = asyncio.run(line.shadows.mirror(request(), b"v", broken, line.send_alerts))
    assert sent is False
    assert line.count("failed") == 1


class DictStore:
    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}

    def get(self, key: bytes) -> bytes | None:
        return self.data.get(key)

    async def record(self, key: bytes, value: bytes) -> None:
        self.data[key] = value


def test_a_request_that_comes_round_again_does_not_pay_its_shadow_twice(tmp_path: Path) -> None:
    store = DictStore()
    line = Line(tmp_path, routing(), Reuse(store, reuse_metrics(CollectorRegistry())))
    req = request()
    assert line.mirror(req)
    assert line.mirror(req)
    assert len(line.providers["shade"].calls) == 1
    assert list(store.data) == [b"r-1|shadow|1"]  # beside the primary's key, r-1|1
    (first, _), (again, headers) = line.sent
    assert again == first
    assert again.request.request_id == "r-1"
    assert (REUSED_HEADER, b"true") in headers
    assert line.book.lanes["tenant:acme", SHADOW_LANE] == pytest.approx(0.5)


def test_the_primary_record_says_whether_canary_or_primary_served(tmp_path: Path) -> None:
    config = routing(canary=0.5)
    line = Line(tmp_path, config)
    fallbacks = FallbackAssets(config, OfflineProvider())
    ids = [f"r-{n}" for n in range(40)]
    rungs = {}
    for request_id in ids:
        req = request(request_id)
        outcome = asyncio.run(generate_asset(req, line.router, fallbacks, line.blobs))
        rungs[request_id] = outcome.raw.rung
        expected = rung_of(req, config)
        assert outcome.raw.rung == expected
        assert outcome.raw.provider == ("next" if expected == CANARY else "main")
    assert set(rungs.values()) == {CANARY, PRIMARY}
    assert all(shadow_of(request(i), config) is not None for i in ids)  # share 1.0


def test_a_failing_canary_fails_over_to_the_chain_and_stays_a_canary(tmp_path: Path) -> None:
    config = routing(canary=1.0)
    dead = ScriptedProvider("next", [ProviderError("provider.unavailable", "down", retryable=True)])
    line = Line(tmp_path, config, next=dead)
    fallbacks = FallbackAssets(config, OfflineProvider())
    outcome = asyncio.run(generate_asset(request(), line.router, fallbacks, line.blobs))
    assert outcome.raw.rung == CANARY
    assert outcome.raw.provider == "main"
    assert [(a.provider, a.code) for a in outcome.raw.attempts] == [
        ("next", "provider.unavailable"),
        ("main", None),
    ]
