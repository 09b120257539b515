"""Canary and shadow versions: which branch a request takes, by its id, and what it changes."""

from __future__ import annotations

import pytest

from agents.inference.routing.config import RoutingConfig, RoutingFileError, parse_routing
from agents.inference.routing.plan import plan_for
from agents.inference.routing.versions import (
    CANARY,
    PRIMARY,
    draw,
    rung_of,
    shadow_of,
)
from schemas.attempts import replay_attempt
from schemas.records import AssetKind, GenerationRequest, ModelSpec

ROUTING = """
providers:
  offline: {type: offline}
aliases:
  copy-default:
    chain:
      - {provider: offline, model: offline, version: offline-1}
    canary: {provider: offline, model: offline, version: offline-2, share: %(canary)s}
    shadow: {provider: offline, model: offline, version: offline-3, share: %(shadow)s,
             price: {output_per_1k: 0.002}}
  plain:
    chain: [{provider: offline, model: offline, version: offline-1}]
default_alias: copy-default
"""


def routing(canary: float = 0.3, shadow: float = 0.5) -> RoutingConfig:
    return parse_routing(ROUTING % {"canary": canary, "shadow": shadow}, ".yaml")


CONFIG = routing()
IDS = [f"req-{n:05d}" for n in range(10_000)]


def request(request_id: str = "r", attempt: int = 1, **model: str) -> GenerationRequest:
    return GenerationRequest(
        request_id=request_id,
        idempotency_key="k",
        tenant="t",
        campaign_id="c",
        kind=AssetKind.TEXT,
        prompt_template="p",
        model=ModelSpec(**model),
        attempt=attempt,
    )


@pytest.mark.parametrize("share", [0.0, 0.05, 0.3, 0.5, 1.0])
def test_the_canary_takes_its_share_of_10000_ids(share: float) -> None:
    config = routing(canary=share)
    canaries = sum(rung_of(request(i, alias="copy-default"), config) == CANARY for i in IDS)
    # Binomial standard deviation at p = 0.5 over 10,000 ids is 0.005: 0.02 is four of them.
    assert abs(canaries / len(IDS) - share) <= 0.02
    if share in (0.0, 1.0):
        assert canaries == share * len(IDS)


@pytest.mark.parametrize("share", [0.0, 0.1, 0.5, 1.0])
def test_the_shadow_mirrors_its_share_of_10000_ids(share: float) -> None:
    config = routing(shadow=share)
    mirrored = sum(shadow_of(request(i, alias="copy-default"), config) is not None for i in IDS)
    assert abs(mirrored / len(IDS) - share) <= 0.02


def test_canary_and_shadow_draw_independently() -> None:
    both = sum(
        rung_of(request(i), CONFIG) == CANARY and shadow_of(request(i), CONFIG) is not None
        for i in IDS
    )
    assert abs(both / len(IDS) - 0.3 * 0.5) <= 0.02


def test_the_branch_is_stable_per_id_across_attempts_replays_and_configs() -> None:
    reloaded = routing()
    for i in IDS[:500]:
        first = rung_of(request(i), CONFIG)
        assert rung_of(request(i, attempt=2), CONFIG) == first
        assert rung_of(request(i, attempt=replay_attempt(1)), CONFIG) == first
        assert rung_of(request(i), reloaded) == first
        assert draw(i, "copy-default", CANARY) == draw(i, "copy-default", CANARY)


def test_raising_the_share_only_adds_canaries() -> None:
    less, more = routing(canary=0.1), routing(canary=0.4)
    small = {i for i in IDS if rung_of(request(i), less) == CANARY}
    large = {i for i in IDS if rung_of(request(i), more) == CANARY}
    assert small < large


def test_a_canary_request_is_served_by_the_canary_first_with_the_chain_as_failover() -> None:
    canary = next(i for i in IDS if rung_of(request(i), CONFIG) == CANARY)
    primary = next(i for i in IDS if rung_of(request(i), CONFIG) == PRIMARY)
    assert [e.wire_model for e in plan_for(request(canary), CONFIG).chain] == [
        "offline-2",
        "offline-1",
    ]
    assert [e.wire_model for e in plan_for(request(primary), CONFIG).chain] == ["offline-1"]


def test_a_shadow_is_the_pinned_model_without_its_share() -> None:
    mirrored = next(i for i in IDS if shadow_of(request(i), CONFIG) is not None)
    entry = shadow_of(request(mirrored), CONFIG)
    assert entry is not None
    assert entry.wire_model == "offline-3"
    assert entry.price.output_per_1k == 0.002
    assert not hasattr(entry, "share")


def test_re_generations_are_never_mirrored_but_a_replay_is() -> None:
    mirrored = next(i for i in IDS if shadow_of(request(i), CONFIG) is not None)
    assert shadow_of(request(mirrored, attempt=2), CONFIG) is None
    assert shadow_of(request(mirrored, attempt=replay_attempt(1)), CONFIG) is not None


def test_pinned_requests_and_aliases_without_versions_take_no_branch() -> None:
    everyone = routing(canary=1.0, shadow=1.0)
    pinned: list[dict[str, str]] = [
        {"provider": "offline"},
        {"alias": "copy-default", "version": "offline-1"},
    ]
    for spec in pinned:
        req = request("x", 1, **spec)
        assert rung_of(req, everyone) is None
        assert shadow_of(req, everyone) is None
        assert plan_for(req, everyone).chain[0].wire_model != "offline-2"
    plain = request("x", alias="plain")
    assert rung_of(plain, everyone) is None
    assert shadow_of(plain, everyone) is None


def test_a_share_outside_0_1_or_an_unknown_provider_fails_the_start() -> None:
    with pytest.raises(RoutingFileError, match="share"):
        routing(canary=1.5)
    bad = ROUTING % {"canary": 0.1, "shadow": 0.1}
    with pytest.raises(RoutingFileError, match="nowhere"):
        parse_routing(
            bad.replace("shadow: {provider: offline", "shadow: {provider: nowhere"), ".yaml"
        )
