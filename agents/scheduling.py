"""Who is served first when work waits: the request's priority, then its tenant's fair share.

Every place where requests wait for a scarce thing orders them the same way: a stage's pool of
events (:class:`streams.stage_pool.StagePool`) and a provider's in-flight slots
(:class:`agents.inference.routing.adaptive_limit.AdaptiveLimit`). This module turns a request
into that order's terms, so the stages and the router agree on it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from schemas.records import GenerationRequest, Priority
from streams.stage_pool import Job, StagePool

if TYPE_CHECKING:
    from streams.app import Line

#: Pool and limiter ranks: a higher rank is served first.
PRIORITY_RANK: Final[Mapping[Priority, int]] = {
    Priority.LOW: 0,
    Priority.NORMAL: 1,
    Priority.HIGH: 2,
}
NORMAL_RANK: Final = PRIORITY_RANK[Priority.NORMAL]
#: Ranks that may take a stage's urgent reserve (streams.stage_pool): HIGH, rare by design.
URGENT_RANK: Final = PRIORITY_RANK[Priority.HIGH]
_RANK_OF_SYMBOL: Final[Mapping[str, int]] = {p.value: rank for p, rank in PRIORITY_RANK.items()}
#: Shadow work (mirrored traffic, never delivered) waits behind every real request.
SHADOW_RANK: Final = -1


@dataclass(frozen=True)
class Schedule:
    """Where one request stands in line: its rank and its flow (the tenant)."""

    rank: int = NORMAL_RANK
    flow: str = ""


def schedule_of(request: GenerationRequest | None) -> Schedule:
    """The request's place in line; an undecodable event waits as NORMAL of no tenant."""
    if request is None:
        return Schedule()
    return Schedule(PRIORITY_RANK.get(request.priority, NORMAL_RANK), request.tenant)


def schedule_of_fields(datum: Mapping[str, Any] | None) -> Schedule:
    """:func:`schedule_of` from a request's plain decoded data (``streams.stage_io.peek_fields``):
    the same place, without building the model. A priority symbol this version does not know
    waits as NORMAL (as the model reads it); a field of the wrong type is ignored."""
    if datum is None:
        return Schedule()
    priority = datum.get("priority")
    rank = NORMAL_RANK
    if isinstance(priority, str):
        rank = _RANK_OF_SYMBOL.get(priority, NORMAL_RANK)
    tenant = datum.get("tenant")
    return Schedule(rank, tenant if isinstance(tenant, str) else "")


def tenant_weights(weights: Mapping[str, float] | None) -> Callable[[str], float]:
    """A tenant's weight among waiting requests of one priority (unnamed tenants: 1.0)."""
    table = dict(weights or {})
    return lambda tenant: table.get(tenant, 1.0)


def urgent_reserve(max_running: int) -> int:
    """Running slots above a stage's concurrency that HIGH events may take: a tenth, at least
    2 (like a provider's in-flight limit, agents.inference.routing.adaptive_limit)."""
    return max(2, max_running // 10)


def stage_pool(
    line: Line,
    stage: str,
    max_running: int,
    lane_limit: Callable[[str], int] | None = None,
    *,
    lane_max_waiting: Callable[[str], int] | None = None,
    spill: Callable[[Job], Awaitable[None]] | None = None,
) -> StagePool:
    """A stage's pool with the line's waiting bound, tenant weights and urgent reserve,
    registered on the line (its waiting events count in ``assetline_stage_queue_depth``);
    ``lane_max_waiting`` and ``spill``: see :class:`streams.stage_pool.StagePool`."""
    settings = line.settings
    pool = StagePool(
        stage,
        max_running=max_running,
        max_waiting=settings.stage_max_waiting,
        weight=tenant_weights(settings.tenant_weights),
        lane_limit=lane_limit,
        urgent_rank=URGENT_RANK,
        urgent_reserve=urgent_reserve(max_running),
        lane_max_waiting=lane_max_waiting,
        spill=spill,
    )
    line.pools[stage] = pool
    return pool
