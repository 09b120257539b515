"""Which chain serves a request: alias, pinned provider/version, or the default."""

from __future__ import annotations

import pytest

from agents.inference.routing.config import DEFAULT_LATENCY_BUDGET_MS, parse_routing
from agents.inference.routing.plan import RoutingError, latency_budget, plan_for
from schemas.records import AssetKind, GenerationRequest, ModelSpec

CONFIG = parse_routing(
    """
providers:
  openai: {type: openai, base_url: "http://127.0.0.1:1/v1"}
  offline: {type: offline}
aliases:
  copy-default:
    latency_budget_ms: 20000
    chain:
      - {provider: openai, model: gpt-4o-mini, version: gpt-4o-mini-2024-07-18}
      - {provider: offline, model: offline, version: offline-1}
    fallback: {text: "stand-in"}
  hero-image:
    chain: [{provider: openai, model: gpt-image-1, price: {per_image: 0.04}}]
default_alias: copy-default
""",
    ".yaml",
)


def request(**model: str | None) -> GenerationRequest:
    return GenerationRequest(
        request_id="r",
        idempotency_key="k",
        tenant="t",
        campaign_id="c",
        kind=AssetKind.TEXT,
        prompt_template="p",
        model=ModelSpec(**model),
    )


def test_an_alias_gives_its_whole_chain_budget_and_fallback() -> None:
    plan = plan_for(request(alias="copy-default"), CONFIG)
    assert plan.alias == "copy-default"
    assert [e.wire_model for e in plan.chain] == ["gpt-4o-mini-2024-07-18", "offline-1"]
    assert plan.latency_budget_ms == 20000
    assert plan.fallback is not None


def test_no_model_named_means_the_default_alias() -> None:
    assert plan_for(request(), CONFIG).alias == "copy-default"


def test_the_request_budget_lowers_the_alias_default() -> None:
    req = request(alias="copy-default").model_copy(update={"latency_budget_ms": 1500})
    assert plan_for(req, CONFIG).latency_budget_ms == 1500


@pytest.mark.parametrize(
    ("model", "requested", "expected"),
    [
        ({"alias": "copy-default"}, 2**31 - 1, 20_000),  # was 2**31-1 ms, ~24.8 days
        ({"alias": "copy-default"}, 20_001, 20_000),
        ({"alias": "copy-default"}, 0, 20_000),
        ({"alias": "copy-default"}, -5, 20_000),
        ({}, 2**31 - 1, 20_000),  # the default alias
        ({"provider": "openai", "version": "gpt-4o-mini-2024-07-18"}, 2**31 - 1, 20_000),
        ({"provider": "openai", "version": "gpt-image-1"}, 2**31 - 1, DEFAULT_LATENCY_BUDGET_MS),
        ({"provider": "offline", "version": "offline-9"}, 2**31 - 1, DEFAULT_LATENCY_BUDGET_MS),
        ({"provider": "offline", "version": "offline-9"}, 900, 900),
    ],
)
def test_a_request_may_lower_the_latency_budget_but_never_raise_it(
    model: dict[str, str], requested: int, expected: int
) -> None:
    req = request(**model).model_copy(update={"latency_budget_ms": requested})
    assert plan_for(req, CONFIG).latency_budget_ms == expected


def test_latency_budget_is_the_smaller_of_request_and_ceiling() -> None:
    assert latency_budget(None, 100) == 100
    assert latency_budget(50, 100) == 50
    assert latency_budget(150, 100) == 100
    assert latency_budget(0, 100) == 100


def test_a_pinned_model_is_one_rung_with_its_configured_price_and_no_fallback() -> None:
    plan = plan_for(request(provider="openai", version="gpt-4o-mini-2024-07-18"), CONFIG)
    assert [e.wire_model for e in plan.chain] == ["gpt-4o-mini-2024-07-18"]
    assert plan.fallback is None


def test_pinning_a_version_on_an_unversioned_entry_sends_that_version() -> None:
    plan = plan_for(request(provider="openai", version="gpt-image-1"), CONFIG)
    assert plan.alias == "hero-image"
    assert plan.chain[0].price.per_image == 0.04


def test_alias_plus_provider_narrows_the_chain() -> None:
    plan = plan_for(request(alias="copy-default", provider="offline"), CONFIG)
    assert [e.provider for e in plan.chain] == ["offline"]


def test_offline_serves_any_of_its_versions_even_if_unlisted() -> None:
    plan = plan_for(request(provider="offline", version="offline-9"), CONFIG)
    assert plan.chain[0].wire_model == "offline-9"


@pytest.mark.parametrize(
    ("model", "code"),
    [
        ({"alias": "nope"}, "routing.unknown_alias"),
        ({"provider": "ghost"}, "routing.unknown_provider"),
        ({"provider": "openai", "version": "gpt-5-preview"}, "routing.unknown_model"),
        ({"alias": "hero-image", "provider": "offline"}, "routing.unknown_model"),
    ],
)
def test_unknown_names_are_routing_errors_with_the_known_names(
    model: dict[str, str], code: str
) -> None:
    with pytest.raises(RoutingError) as caught:
        plan_for(request(**model), CONFIG)
    assert caught.value.code == code
    assert caught.value.message


PER_KIND = CONFIG.model_copy(update={"default_aliases": {AssetKind.IMAGE: "hero-image"}})


def kind_request(kind: AssetKind, **model: str | None) -> GenerationRequest:
    return request(**model).model_copy(update={"kind": kind})


def test_an_image_request_without_an_alias_goes_to_the_kinds_default_alias() -> None:
    """Before: it went to ``default_alias``, a chat model's chain."""
    plan = plan_for(kind_request(AssetKind.IMAGE), PER_KIND)
    assert plan.alias == "hero-image"
    assert [e.wire_model for e in plan.chain] == ["gpt-image-1"]


def test_kinds_without_their_own_default_fall_back_to_default_alias() -> None:
    assert plan_for(kind_request(AssetKind.TEXT), PER_KIND).alias == "copy-default"
    assert plan_for(kind_request(AssetKind.JSON), PER_KIND).alias == "copy-default"
    assert plan_for(kind_request(AssetKind.IMAGE), CONFIG).alias == "copy-default"


def test_a_named_alias_or_provider_still_wins_over_the_kinds_default() -> None:
    assert plan_for(kind_request(AssetKind.IMAGE, alias="copy-default"), PER_KIND).alias == (
        "copy-default"
    )
    pinned = kind_request(AssetKind.IMAGE, provider="offline", version="offline-9")
    assert plan_for(pinned, PER_KIND).chain[0].provider == "offline"
