"""Wire a Faust agent's stream to a :class:`streams.stage_pool.StagePool`.

The agent's body becomes ``await feed_pool(stream, pool, app, place=..., handle=...)``: it
takes events as fast as the pool has room, and each event is acknowledged only when its
``handle`` returned. An event whose handling was cancelled (the worker stopping) or raised is
never acknowledged, so its partition commits no further and the event is fetched again after
the next seek.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from streams.stage_pool import Job, StagePool


@dataclass(frozen=True)
class Place:
    """Where an event stands in line: rank (higher first), flow, key and lane (see Job)."""

    rank: int = 0
    flow: str = ""
    key: str | None = None
    lane: str | None = None


async def feed_pool(
    stream: Any,
    pool: StagePool,
    app: Any,
    *,
    place: Callable[[Any], Place],
    handle: Callable[[Any], Awaitable[None]],
) -> None:
    """Take ``stream``'s events into ``pool`` until the agent stops (see the module docstring).

    ``place(event)`` must be cheap and never raise for bad input (it runs on the taking loop);
    ``handle(event)`` does the stage's work under its own crash guard.
    """
    events = stream.noack()
    generation: int | None = None
    async with pool.running():
        async for event in events.events():
            message = event.message
            if message.generation_id != generation:
                generation = message.generation_id
                pool.drop_stale()  # a rebalance: what waits is fetched again by the seek
            where = place(event)
            await pool.submit(
                Job(
                    _acking(events, event, handle),
                    priority=where.rank,
                    flow=where.flow,
                    key=where.key,
                    lane=where.lane,
                    stale=_stale_check(app, message),
                )
            )


def _acking(events: Any, event: Any, handle: Callable[[Any], Awaitable[None]]) -> Any:
    async def run() -> None:
        await handle(event)
        await events.ack(event)  # only after the work is done

    return run


def _stale_check(app: Any, message: Any) -> Callable[[], bool]:
    generation = message.generation_id
    return lambda: generation != app.consumer_generation_id
