"""The generate stage: requests -> model router -> blob store -> raw topic (+ alerts)."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import faust
from aiokafka.errors import KafkaError

from agents.generate.generate_one import crashed, generate_asset, refused
from agents.inference.providers.offline import OfflineProvider
from agents.inference.routing.adapters import build_adapters, close_adapters
from agents.inference.routing.budget import BudgetGuard
from agents.inference.routing.config import load_routing
from agents.inference.routing.fallback import FallbackAssets
from agents.inference.routing.metrics import ProviderMetrics
from agents.inference.routing.router import ModelRouter
from agents.inference.routing.spend import SpendView, TableSpendBook
from agents.tenants import Gatekeeper
from schemas.records import GenerationRequest
from streams.kafka import open_topic_reader
from streams.limits import AssetLimits
from streams.stage_io import CrashOutcome, StageIO, message_headers

if TYPE_CHECKING:
    from streams.app import Line

STAGE = "generate"

log = logging.getLogger(__name__)


def _current_partition() -> int:
    event = faust.current_event()
    if event is None:
        raise RuntimeError("spend can only be booked while an event is being processed")
    return int(event.message.partition)


def install(line: Line) -> None:
    settings = line.settings
    io = StageIO(line, STAGE)
    codecs = line.codecs
    # Rendering is CPU-bound; Pillow releases the GIL while encoding, so a few threads overlap
    # rendering with Kafka I/O without starving the event loop.
    renderers = ThreadPoolExecutor(settings.render_threads, thread_name_prefix="render")
    limits = AssetLimits.from_settings(settings)
    offline = OfflineProvider(
        max_pixels=settings.max_image_pixels,
        max_side=settings.max_image_side,
        executor=renderers,
        limits=limits,
    )
    config = load_routing(settings.routing_file)  # a bad file fails the start, loudly
    gatekeeper = Gatekeeper.from_settings(settings)  # so does a bad tenants file
    adapters = build_adapters(config, settings.api_keys, offline)
    spend = line.app.Table(
        "spend",
        changelog_topic=line.topics.spend,
        key_type=str,
        value_type=float,
        partitions=settings.topic_partitions,
    )
    view = SpendView()
    book = TableSpendBook(spend, settings.topic_partitions, _current_partition, view.totals)
    router = ModelRouter(
        config, adapters, BudgetGuard(config.budgets, book), ProviderMetrics.build(line.registry)
    )
    fallbacks = FallbackAssets(config, offline)

    def ends_crashed(request: GenerationRequest, cost: float = 0.0) -> CrashOutcome:
        """A crash from here on ends the request FAILED (``stage.crashed``) through deliver."""

        async def publish(message: str) -> bool:
            value = codecs.validated.encode(crashed(request, message, cost=cost))
            await io.send(line.topics.rejected, request.request_id, value, "rejected")
            return True

        return publish

    @line.app.agent(line.topics.requests, name=STAGE, concurrency=settings.generate_concurrency)
    async def generate(stream: Any) -> None:
        async for event in stream.events():
            async with io.handling(event) as crash:
                request = await io.decode(
                    codecs.request,
                    event,
                    max_bytes=settings.max_request_bytes,
                    too_large="request.too_large",
                )
                if request is None:
                    continue
                value = event.message.value or b""
                admission = gatekeeper.admit(request, value, message_headers(event.message))
                refusal = admission.refusal
                if refusal is not None and not refusal.authentic:
                    # Never a completion: it would take the real request's ledger slot.
                    await io.dead_letter(event, refusal.code, refusal.reason)
                    continue
                request = admission.request
                crash.arm(ends_crashed(request))  # admitted: a crash still completes it
                if refusal is not None:
                    raw = refused(request, refusal.code, refusal.reason)
                    await io.send(
                        line.topics.raw, request.request_id, codecs.raw.encode(raw), "raw.error"
                    )
                    continue
                outcome = await generate_asset(
                    request, router, fallbacks, line.blobs, limits=limits
                )
                raw = outcome.raw
                crash.arm(ends_crashed(request, raw.cost))
                for alert in outcome.alerts:
                    value = codecs.alert.encode(alert)
                    await io.send(line.topics.alerts, alert.alert_id, value, "alerts")
                output = "raw" if raw.error is None else "raw.error"
                await io.send(line.topics.raw, request.request_id, codecs.raw.encode(raw), output)

    @line.app.task  # type: ignore[untyped-decorator]
    async def follow_spend() -> None:
        """Other workers' spend, so a budget holds across the whole group, not per worker."""
        while True:
            try:
                reader = await open_topic_reader(settings.kafka_bootstrap, line.topics.names.spend)
                try:
                    while True:
                        batch = await reader.getmany(timeout_ms=500)
                        for records in batch.values():
                            view.apply((r.key, r.value) for r in records)
                finally:
                    await reader.stop()
            except KafkaError as exc:
                log.warning("spend follower lost the broker (%s); reconnecting", exc)
                await asyncio.sleep(1.0)

    @line.app.on_before_shutdown.connect
    async def _close_pools(app: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await close_adapters(adapters)
        renderers.shutdown(wait=False)
