"""Which chain serves a request: alias, pinned provider/version, or the default."""

from __future__ import annotations

import pytest

from agents.generate.routing.config import parse_routing
from agents.generate.routing.plan import RoutingError, plan_for
from streams.records import AssetKind, GenerationRequest, ModelSpec

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


def test_the_request_budget_overrides_the_alias_default() -> None:
    req = request(alias="copy-default").model_copy(update={"latency_budget_ms": 1500})
    assert plan_for(req, CONFIG).latency_budget_ms == 1500


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
