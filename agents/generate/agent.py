"""The generate stage: requests -> provider -> blob store -> raw topic."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from agents.generate.generation import ProviderRouter, generate_asset
from agents.generate.providers.offline import OfflineProvider
from streams.stage import StageIO

if TYPE_CHECKING:
    from streams.app import Line

STAGE = "generate"


def build_router(line: Line) -> ProviderRouter:
    settings = line.settings
    # Rendering is CPU-bound; Pillow releases the GIL while encoding, so a few threads overlap
    # rendering with Kafka I/O without starving the event loop.
    renderers = ThreadPoolExecutor(settings.render_threads, thread_name_prefix="render")
    offline = OfflineProvider(
        max_pixels=settings.max_image_pixels,
        max_side=settings.max_image_side,
        executor=renderers,
    )
    return ProviderRouter({offline.name: offline}, default=offline.name)


def install(line: Line) -> None:
    io = StageIO(line, STAGE)
    router = build_router(line)
    codecs = line.codecs

    @line.app.agent(
        line.topics.requests, name=STAGE, concurrency=line.settings.generate_concurrency
    )
    async def generate(stream: Any) -> None:
        async for event in stream.events():
            async with io.handling(event):
                request = await io.decode(codecs.request, event)
                if request is None:
                    continue
                raw = await generate_asset(request, router, line.blobs)
                output = "raw" if raw.error is None else "raw.error"
                await io.send(line.topics.raw, request.request_id, codecs.raw.encode(raw), output)
