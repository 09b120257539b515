"""The generate stage: requests -> model router -> blob store -> raw topic (+ alerts)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

from agents.generate.finished import REUSED_HEADER, Reuse, reuse_metrics
from agents.generate.generate_one import GenerationOutcome, crashed, generate_asset, refused
from agents.generate.shadow import install_shadows
from agents.inference.batch import BatchTickets
from agents.inference.paid_once import RecordTable, install_record_table
from agents.inference.routing.fallback import FallbackAssets
from agents.inference.routing.spend import GENERATE_LANE
from agents.inference.worker import book_lane, worker_inference
from agents.scheduling import schedule_of_fields, stage_pool
from agents.tenants import Gatekeeper
from schemas.records import GenerationRequest
from streams.limits import AssetLimits
from streams.pooled_stage import Place, feed_pool
from streams.stage_io import CrashOutcome, StageIO, message_headers, peek_fields

if TYPE_CHECKING:
    from streams.app import Line

STAGE = "generate"
#: The agent taking ``.requests.urgent`` into the stage's pool.
URGENT_AGENT = "generate-urgent"

log = logging.getLogger(__name__)


def request_place(datum: dict[str, Any] | None) -> Place:
    """Where a request event waits, from its plain decoded data (None: undecodable)."""
    schedule = schedule_of_fields(datum)
    request_id = datum.get("request_id") if datum is not None else None
    return Place(schedule.rank, schedule.flow, request_id if isinstance(request_id, str) else None)


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
    records: RecordTable | None = None
    reuse: Reuse | None = None
    metrics = reuse_metrics(line.registry)
    if settings.generation_reuse:
        records = install_record_table(line, "generations", line.topics.generations, metrics)
        reuse = Reuse(records, metrics)
        if router.batches is not None:
            # A batched request's place in its batch, beside its finished generation: after a
            # crash or a rebalance its next owner follows that batch instead of paying again.
            router.batches.tickets = BatchTickets(records)
    # Shadow versions (routing file): a mirrored request's copy, made after its primary is sent.
    mirror = install_shadows(line, io, limits, reuse)

    async def generate_once(request: Any, value: bytes) -> tuple[GenerationOutcome, bool]:
        """The recorded outcome of this (request, attempt) if there is one, else a new one,
        recorded (and acknowledged) before the caller emits it. True when reused."""

        def generate() -> Awaitable[GenerationOutcome]:
            return generate_asset(request, router, fallbacks, line.blobs, limits=limits)

        if reuse is None:
            return await generate(), False
        return await reuse.outcome(request, value, generate)

    def ends_crashed(request: GenerationRequest, cost: float = 0.0) -> CrashOutcome:
        """A crash from here on ends the request FAILED (``stage.crashed``) through deliver."""

        async def publish(message: str) -> bool:
            value = codecs.validated.encode(crashed(request, message, cost=cost))
            await io.send(line.topics.rejected, request.request_id, value, "rejected")
            return True

        return publish

    pool = stage_pool(line, STAGE, settings.generate_concurrency)

    def place(event: Any) -> Place:
        """Priority and tenant from a cheap decode (plain data, no model: this runs once per
        event on the taking loop); undecodable bytes wait as NORMAL (their handling
        dead-letters them). Keyed by request: one request's events keep their order."""
        return request_place(peek_fields(codecs.request, event))

    @line.app.agent(line.topics.requests, name=STAGE)
    async def generate(stream: Any) -> None:
        await feed_pool(stream, pool, line.app, place=place, handle=handle)

    # HIGH requests' own intake (TopicNames.requests_for): Kafka has no priority, so a HIGH
    # record behind 10,000 NORMAL ones on .requests is taken only after them. Taken here, it
    # joins the same pool, where its priority (from its value, not the topic) decides.
    # Co-partitioned with .requests: its events write the same tables' same partitions.
    @line.app.agent(line.topics.requests_urgent, name=URGENT_AGENT)
    async def generate_urgent(stream: Any) -> None:
        await feed_pool(stream, pool, line.app, place=place, handle=handle)

    async def handle(event: Any) -> None:
        async with io.handling(event) as crash:
            request = await io.decode(
                codecs.request,
                event,
                max_bytes=settings.max_request_bytes,
                too_large="request.too_large",
            )
            if request is None:
                return
            value = event.message.value or b""
            admission = gatekeeper.admit(request, value, message_headers(event.message))
            refusal = admission.refusal
            if refusal is not None and not refusal.authentic:
                # Never a completion: it would take the real request's ledger slot.
                await io.dead_letter(event, refusal.code, refusal.reason)
                return
            request = admission.request
            crash.arm(ends_crashed(request))  # admitted: a crash still completes it
            if refusal is not None:
                raw = refused(request, refusal.code, refusal.reason)
                await io.send(
                    line.topics.raw, request.request_id, codecs.raw.encode(raw), "raw.error"
                )
                return
            outcome, reused = await generate_once(request, value)
            raw = outcome.raw
            crash.arm(ends_crashed(request, raw.cost))
            for alert in outcome.alerts:
                encoded = codecs.alert.encode(alert)
                await io.send(line.topics.alerts, alert.alert_id, encoded, "alerts")
            output = "raw" if raw.error is None else "raw.error"
            headers = [(REUSED_HEADER, b"true")] if reused else None
            await io.send(
                line.topics.raw, request.request_id, codecs.raw.encode(raw), output, headers
            )
            await mirror(request, value)  # never raises: a shadow cannot touch its primary
