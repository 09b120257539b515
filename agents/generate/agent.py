"""The generate stage: requests -> model router -> blob store -> raw topic (+ alerts)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from agents.generate.generate_one import crashed, generate_asset, refused
from agents.inference.routing.fallback import FallbackAssets
from agents.inference.routing.spend import GENERATE_LANE
from agents.inference.worker import book_lane, worker_inference
from agents.tenants import Gatekeeper
from schemas.records import GenerationRequest
from streams.limits import AssetLimits
from streams.stage_io import CrashOutcome, StageIO, message_headers

if TYPE_CHECKING:
    from streams.app import Line

STAGE = "generate"

log = logging.getLogger(__name__)


def install(line: Line) -> None:
    settings = line.settings
    io = StageIO(line, STAGE)
    codecs = line.codecs
    limits = AssetLimits.from_settings(settings)
    # One router and spend ledger per worker, shared with the validate stage's judge (built
    # here or by validate); a bad routing file or a missing key fails the start, loudly.
    inference = worker_inference(line)
    book_lane(line, GENERATE_LANE)
    gatekeeper = Gatekeeper.from_settings(settings)  # so does a bad tenants file
    router = inference.router
    fallbacks = FallbackAssets(inference.config, inference.offline)

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
