"""agents.scheduling: the order the stages and the router serve waiting requests in."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from agents.scheduling import (
    NORMAL_RANK,
    PRIORITY_RANK,
    Schedule,
    schedule_of,
    schedule_of_fields,
    stage_pool,
    urgent_reserve,
)
from schemas.records import Priority
from streams.settings import Settings
from tests.support.assets import make_request


def test_high_is_the_only_urgent_rank_and_its_reserve_is_a_tenth_at_least_two() -> None:
    assert urgent_reserve(512) == 51
    assert urgent_reserve(16) == 2
    assert urgent_reserve(1) == 2
    line: Any = SimpleNamespace(settings=Settings(kafka_bootstrap="127.0.0.1:9"), pools={})
    pool = stage_pool(line, "generate", 512)
    assert line.pools["generate"] is pool
    assert pool.urgent_rank == PRIORITY_RANK[Priority.HIGH] > NORMAL_RANK
    assert pool.urgent_reserve == 51


def test_schedule_of_fields_places_plain_data_where_the_model_would() -> None:
    for priority in Priority:
        request = make_request(tenant="zeta", priority=priority)
        assert schedule_of_fields(request.model_dump(mode="json")) == schedule_of(request)
    assert schedule_of_fields({"tenant": "t", "priority": "HIGH"}) == Schedule(
        PRIORITY_RANK[Priority.HIGH], "t"
    )
    assert schedule_of_fields({"tenant": "t", "priority": "URGENT"}) == Schedule(NORMAL_RANK, "t")
    assert schedule_of_fields({"tenant": 3, "priority": 2}) == Schedule(NORMAL_RANK, "")
    assert schedule_of_fields(None) == schedule_of(None) == Schedule()
