"""agents.scheduling: the order the stages and the router serve waiting requests in."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from agents.scheduling import NORMAL_RANK, PRIORITY_RANK, stage_pool, urgent_reserve
from schemas.records import Priority
from streams.settings import Settings


def test_high_is_the_only_urgent_rank_and_its_reserve_is_a_tenth_at_least_two() -> None:
    assert urgent_reserve(512) == 51
    assert urgent_reserve(16) == 2
    assert urgent_reserve(1) == 2
    line: Any = SimpleNamespace(settings=Settings(kafka_bootstrap="127.0.0.1:9"), pools={})
    pool = stage_pool(line, "generate", 512)
    assert line.pools["generate"] is pool
    assert pool.urgent_rank == PRIORITY_RANK[Priority.HIGH] > NORMAL_RANK
    assert pool.urgent_reserve == 51
