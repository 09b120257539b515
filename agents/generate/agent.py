"""The generate stage: requests -> model router -> blob store -> raw topic (+ alerts)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import faust

from agents.generate.generation import generate_asset
from agents.generate.providers.offline import OfflineProvider
from agents.generate.routing.adapters import build_adapters, close_adapters
from agents.generate.routing.budget import BudgetGuard
from agents.generate.routing.config import load_routing
from agents.generate.routing.fallback import FallbackAssets
from agents.generate.routing.metrics import ProviderMetrics
from agents.generate.routing.router import ModelRouter
from agents.generate.routing.spend import TableSpendBook
from streams.stage import StageIO

if TYPE_CHECKING:
    from streams.app import Line

STAGE = "generate"


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
    offline = OfflineProvider(
        max_pixels=settings.max_image_pixels, max_side=settings.max_image_side, executor=renderers
    )
    config = load_routing(settings.routing_file)  # a bad file fails the start, loudly
    adapters = build_adapters(config, settings.api_keys, offline)
    spend = line.app.Table(
        "spend",
        changelog_topic=line.topics.spend,
        key_type=str,
        value_type=float,
        partitions=settings.topic_partitions,
    )
    book = TableSpendBook(spend, settings.topic_partitions, _current_partition)
    router = ModelRouter(
        config, adapters, BudgetGuard(config.budgets, book), ProviderMetrics.build(line.registry)
    )
    fallbacks = FallbackAssets(config, offline)

    @line.app.agent(line.topics.requests, name=STAGE, concurrency=settings.generate_concurrency)
    async def generate(stream: Any) -> None:
        async for event in stream.events():
            async with io.handling(event):
                request = await io.decode(codecs.request, event)
                if request is None:
                    continue
                outcome = await generate_asset(request, router, fallbacks, line.blobs)
                raw = outcome.raw
                for alert in outcome.alerts:
                    value = codecs.alert.encode(alert)
                    await io.send(line.topics.alerts, alert.alert_id, value, "alerts")
                output = "raw" if raw.error is None else "raw.error"
                await io.send(line.topics.raw, request.request_id, codecs.raw.encode(raw), output)

    @line.app.on_before_shutdown.connect
    async def _close_pools(app: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        await close_adapters(adapters)
        renderers.shutdown(wait=False)
