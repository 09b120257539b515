"""Batch rungs in the routing file, and which requests they take."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agents.inference.batch import BatchLanes, build_batch_clients
from agents.inference.routing.config import RoutingFileError, parse_routing
from schemas.records import AssetKind, GenerationRequest, ModelSpec

ROUTING = """
providers:
  oai: {{type: openai, base_url: "http://127.0.0.1:9/v1"}}
  local: {{type: offline}}
aliases:
  copy:
    latency_budget_ms: 60000
    chain: [{{provider: oai, model: gpt-4o-mini}}]
    batch: {{provider: {batch}, model: gpt-4o-mini, window_s: 3600, margin_s: 120,
             price: {{input_per_1k: 0.5}}}}
default_alias: copy
"""
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def request(budget_ms: int | None, **spec: str) -> GenerationRequest:
    return GenerationRequest(
        request_id="r",
        idempotency_key="k",
        tenant="acme",
        campaign_id="c",
        kind=AssetKind.TEXT,
        prompt_template="x",
        model=ModelSpec(alias="copy", **spec),
        latency_budget_ms=budget_ms,
        created_at=NOW,
    )


def lanes() -> BatchLanes:
    config = parse_routing(ROUTING.format(batch="oai"), ".yaml")
    return BatchLanes(config, build_batch_clients(config, {}), clock=NOW.timestamp)


def test_batch_rung_parses_with_its_own_price() -> None:
    config = parse_routing(ROUTING.format(batch="oai"), ".yaml")
    rung = config.aliases["copy"].batch
    assert rung is not None
    assert rung.entry.price.input_per_1k == 0.5
    assert rung.entry.max_retries == 0
    assert (rung.max_size, rung.max_age_s, rung.poll_s) == (500, 60.0, 30.0)


@pytest.mark.parametrize("provider", ["local", "nowhere"])
def test_batch_rung_must_name_a_batch_capable_provider(provider: str) -> None:
    with pytest.raises(RoutingFileError, match="batch provider"):
        parse_routing(ROUTING.format(batch=provider), ".yaml")


def test_a_long_deadline_is_batched_until_the_reserve_is_all_that_is_left() -> None:
    found = lanes().collector_for(request(86_400_000), "copy", 86_400.0, 60.0)
    assert found is not None
    _, give_up_at = found
    # reserve: max(margin 120 s, the run's budget 60 s)
    assert give_up_at == NOW.timestamp() + 86_400 - 120


@pytest.mark.parametrize("left_s", [60.0, 3_600.0, 3_720.0])
def test_what_leaves_no_room_for_window_and_reserve_stays_synchronous(left_s: float) -> None:
    assert lanes().collector_for(request(86_400_000), "copy", left_s, 60.0) is None


def test_the_reserve_is_at_least_one_synchronous_run() -> None:
    batched = lanes()
    assert batched.collector_for(request(86_400_000), "copy", 3_600 + 300, 250.0) is not None
    assert batched.collector_for(request(86_400_000), "copy", 3_600 + 300, 300.0) is None


def test_pinned_requests_images_and_other_aliases_stay_synchronous() -> None:
    batched = lanes()
    pinned = request(86_400_000, provider="oai")
    assert batched.collector_for(pinned, "copy", 86_400.0, 60.0) is None
    assert batched.collector_for(request(86_400_000), "other", 86_400.0, 60.0) is None
    image = request(86_400_000).model_copy(update={"kind": AssetKind.IMAGE})
    assert batched.collector_for(image, "copy", 86_400.0, 60.0) is None
