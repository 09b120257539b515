"""The inference layer of one worker: one router and one spend ledger for every stage.

Generation and the validate stage's AI judge are both model calls, so they share one call path:
the :class:`ModelRouter` built here from the routing file (one breaker and one token bucket per
provider in the worker, one set of provider metrics, the same retries), and one spend ledger,
so a judge call is checked against and charged to the same tenant and campaign budgets as a
generation.

Spend is booked per lane (see :mod:`agents.inference.routing.spend`): each stage that books
declares its lane's Faust table with :func:`book_lane`, so the lane's changelog is subscribed by
exactly the workers that run the stage, which is what makes Faust give a worker the same
partitions of the changelog as of the stage's input (topics read by different sets of workers
are assigned independently). One follower per worker reads every lane's changelog, so each
budget counts every lane and every worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final
from weakref import WeakKeyDictionary

import faust
from aiokafka.errors import KafkaError

from agents.inference.batch import BatchLanes, build_batch_clients
from agents.inference.providers.base import Provider
from agents.inference.providers.offline import OfflineProvider
from agents.inference.routing.adapters import build_adapters, close_adapters
from agents.inference.routing.budget import BudgetGuard
from agents.inference.routing.config import RoutingConfig, load_routing
from agents.inference.routing.metrics import ProviderMetrics
from agents.inference.routing.router import ModelRouter
from agents.inference.routing.spend import (
    GENERATE_LANE,
    JUDGE_LANE,
    SHADOW_LANE,
    SpendView,
    TableSpendBook,
)
from agents.scheduling import tenant_weights
from schemas.records import AlertKind
from streams.circuit_breaker import STATE_DETAIL, BreakerState
from streams.kafka import open_topic_reader
from streams.limits import AssetLimits

if TYPE_CHECKING:
    from streams.app import Line

__all__ = ["LANE_TABLES", "WorkerInference", "book_lane", "current_partition", "worker_inference"]

log = logging.getLogger(__name__)

#: Each lane's table name (Faust's, unique per app) and the ``LineTopics`` field of its
#: changelog. Generation's table keeps the name and topic it always had.
LANE_TABLES: Final = {
    GENERATE_LANE: ("spend", "spend"),
    JUDGE_LANE: ("spend-judge", "spend_judge"),
    SHADOW_LANE: ("spend-shadow", "spend_shadow"),
}


def current_partition() -> int:
    """The partition of the event being processed: spend is booked under it (spend.py)."""
    event = faust.current_event()
    if event is None:
        raise RuntimeError("spend can only be booked while an event is being processed")
    return int(event.message.partition)


@dataclass
class WorkerInference:
    """What the model-calling stages of one worker share."""

    config: RoutingConfig
    offline: OfflineProvider
    adapters: dict[str, Provider]
    router: ModelRouter
    view: SpendView
    #: lane -> Faust table, for the lanes whose stage runs in this worker (book_lane).
    tables: dict[str, Any]


_WORKERS: WeakKeyDictionary[Any, WorkerInference] = WeakKeyDictionary()


def worker_inference(line: Line) -> WorkerInference:
    """The line's inference layer, built by the first stage that asks (same one afterwards).

    Building it reads the routing file and builds the adapters (a bad file or a missing key
    fails the start, loudly), starts the spend follower and closes the adapters at shutdown.
    """
    found = _WORKERS.get(line.app)
    if found is None:
        found = _build(line)
        _WORKERS[line.app] = found
    return found


def book_lane(line: Line, lane: str) -> None:
    """Declare ``lane``'s spend table on the line; call it from the stage that books there."""
    inference = worker_inference(line)
    if lane in inference.tables:
        return
    name, topic = LANE_TABLES[lane]
    inference.tables[lane] = line.app.Table(
        name,
        changelog_topic=getattr(line.topics, topic),
        key_type=str,
        value_type=float,
        partitions=line.settings.topic_partitions,
    )


def _build(line: Line) -> WorkerInference:
    settings = line.settings
    # Rendering is CPU-bound; Pillow releases the GIL while encoding, so a few threads overlap
    # rendering with Kafka I/O without starving the event loop (threads start on first use).
    renderers = ThreadPoolExecutor(settings.render_threads, thread_name_prefix="render")
    offline = OfflineProvider(
        max_pixels=settings.max_image_pixels,
        max_side=settings.max_image_side,
        executor=renderers,
        limits=AssetLimits.from_settings(settings),
    )
    config = load_routing(settings.routing_file)
    adapters = build_adapters(config, settings.api_keys, offline)
    view = SpendView()
    tables: dict[str, Any] = {}
    book = TableSpendBook(tables, settings.topic_partitions, current_partition, view.totals)
    router = ModelRouter(
        config,
        adapters,
        BudgetGuard(config.budgets, book),
        ProviderMetrics.build(line.registry),
        weight=tenant_weights(settings.tenant_weights),
    )
    batch_clients = build_batch_clients(config, settings.api_keys)
    if batch_clients:  # aliases with a batch rung (issue 16 #5)
        router.batches = BatchLanes(config, batch_clients, registry=line.registry)
    for _name, topic in LANE_TABLES.values():
        _follow_spend(line, getattr(line.topics.names, topic), view)

    @line.app.on_partitions_assigned.connect
    async def _share_rate_limits(app: Any, /, *args: Any, **kwargs: Any) -> None:
        # After every rebalance (before its recovery): the group's live workers split each
        # provider's rate limit, so N workers do not send N times the limit.
        router.set_group_size(group_size(app.assignor.changelog_distribution))

    _follow_breakers(line, router)

    @line.app.on_before_shutdown.connect
    async def _close_pools(app: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await close_adapters(adapters)
        if router.batches is not None:
            await router.batches.aclose()
        renderers.shutdown(wait=False)

    return WorkerInference(config, offline, adapters, router, view, tables)


def _follow_breakers(line: Line, router: ModelRouter) -> None:
    """Breaker state shared across the group: a BREAKER_OPENED alert on ``.alerts`` (what a
    worker publishes when its breaker of a provider opens) opens this worker's breaker of that
    provider too, for what is left of its ``reset_after_s``; one with details ``state=closed``
    (published when a worker's probe found the provider healthy again) closes a breaker this
    worker opened only because of a peer. Reading starts at the alerts of the last
    ``reset_after_s`` (the longest of the providers'), so a worker that starts while a peer's
    breaker is open opens its own too. Ages come from the alert's own ``at``, so an alert
    sent again (a reused generation's) does not count as new."""
    settings = line.settings
    topic = line.topics.names.alerts
    codec = line.codecs.alert
    lookback_s = max((b.reset_after_s for b in router.breakers.values()), default=0.0)

    async def follow_breakers() -> None:
        while True:
            try:
                reader = await open_topic_reader(settings, topic)
                try:
                    await _seek_to_time(reader, time.time() - lookback_s)
                    log.info("following breaker openings and closings on %s", topic)
                    while True:
                        batch = await reader.getmany(timeout_ms=500)
                        for records in batch.values():
                            for record in records:
                                change = breaker_change_of(codec, record)
                                if change is None:
                                    continue
                                ago_s = time.time() - change.at_s
                                if change.opened:
                                    router.peer_breaker_opened(change.provider, ago_s)
                                else:
                                    router.peer_breaker_closed(change.provider, ago_s)
                finally:
                    await reader.stop()
            except KafkaError as exc:
                log.warning("breaker follower lost the broker (%s); reconnecting", exc)
                await asyncio.sleep(1.0)

    line.app.task(follow_breakers)


async def _seek_to_time(reader: Any, since_s: float) -> None:
    """Each assigned partition to its first record at or after ``since_s`` (epoch seconds),
    or, when there is none, to where its end was before asking (a lazy seek to the end would
    skip a record written meanwhile)."""
    tps = list(reader.assignment())
    ends = await reader.end_offsets(tps)
    found = await reader.offsets_for_times({tp: int(since_s * 1000) for tp in tps})
    for tp in tps:
        hit = found.get(tp)
        reader.seek(tp, ends[tp] if hit is None else hit.offset)


@dataclass(frozen=True)
class BreakerChange:
    """A peer's breaker of ``provider`` opened (or closed) at ``at_s`` (epoch seconds)."""

    provider: str
    opened: bool
    at_s: float


def breaker_change_of(codec: Any, record: Any) -> BreakerChange | None:
    """What a BREAKER_OPENED alert record says (an opening, or with details ``state=closed`` a
    closing), else None (other alerts, no provider, an unknown state, bad bytes)."""
    try:
        alert = codec.decode(record.value or b"", list(record.headers or ()))
    except Exception:  # an alert this worker cannot read is not its business
        return None
    if alert.kind is not AlertKind.BREAKER_OPENED or not alert.provider:
        return None
    state = alert.details.get(STATE_DETAIL, BreakerState.OPEN.value)
    if state not in (BreakerState.OPEN.value, BreakerState.CLOSED.value):
        return None
    return BreakerChange(
        str(alert.provider), state == BreakerState.OPEN.value, alert.at.timestamp()
    )


def group_size(distribution: Mapping[str, Any]) -> int:
    """Live workers of the group, from Faust's assignment (every member's web URL, the same on
    every member after a rebalance); at least 1."""
    return max(1, len(distribution))


def _follow_spend(line: Line, topic: str, view: SpendView) -> None:
    """Every worker's totals of one lane, so a budget holds across the group, not per worker."""
    settings = line.settings

    async def follow_spend() -> None:
        while True:
            try:
                reader = await open_topic_reader(settings, topic)
                try:
                    while True:
                        batch = await reader.getmany(timeout_ms=500)
                        for records in batch.values():
                            view.apply((r.key, r.value) for r in records)
                finally:
                    await reader.stop()
            except KafkaError as exc:
                log.warning("spend follower of %s lost the broker (%s); reconnecting", topic, exc)
                await asyncio.sleep(1.0)

    follow_spend.__name__ = follow_spend.__qualname__ = f"follow_spend_{topic}"
    line.app.task(follow_spend)
