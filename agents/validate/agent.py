"""The validate stage: raw topic -> brand policy + checks + judge -> approved, rejected, more.

Triage decides; this agent only publishes: APPROVED to ``.approved``; every failure to
``.rejected`` with its full report and disposition; a REGENERATE also sends the next attempt
to ``.requests`` (``.requests.urgent`` when HIGH), and a REVIEW also sends the asset to
``.review`` for a person.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.inference.paid_once import install_record_table
from agents.inference.routing.config import routing_source
from agents.inference.routing.router import ModelRouter
from agents.inference.routing.spend import JUDGE_LANE
from agents.inference.worker import book_lane, worker_inference
from agents.policy import load_profiles
from agents.scheduling import SHADOW_RANK, schedule_of, stage_pool
from agents.tenants import Gatekeeper
from agents.validate.checks.terms import default_detector
from agents.validate.deadline import CheckRunner
from agents.validate.gateway import Gateway
from agents.validate.judged import JudgeRecords, judgement_metrics
from agents.validate.metrics import GatewayMetrics, overdue_checks_gauge
from agents.validate.shadow import is_shadow, validate_shadow
from agents.validate.validate_one import crashed
from schemas.records import Disposition, RawAsset, ValidatedAsset
from streams.limits import AssetLimits
from streams.pooled_stage import Place, feed_pool
from streams.stage_io import CrashOutcome, StageIO, peek

if TYPE_CHECKING:
    from streams.app import Line

STAGE = "validate"


def install(line: Line) -> None:
    settings = line.settings
    io = StageIO(line, STAGE)
    codecs = line.codecs
    topics = line.topics
    book = load_profiles(settings.profiles_dir)  # a bad profile fails the start, loudly
    judged = any(policy.judge is not None for policy in book.policies.values())
    # The judge calls providers through the worker's model router, shared with generation
    # (retries, breakers, rate limits, budgets), and books its spend in the judge's lane of
    # the spend ledger; a profile naming a provider the routing file lacks fails the start
    # in one line naming both files.
    router: ModelRouter | None = None
    judgements: JudgeRecords | None = None
    if judged:
        inference = worker_inference(line)
        book.require_judge_providers(
            inference.config.providers, routing_source(settings.routing_file)
        )
        book_lane(line, JUDGE_LANE)
        router = inference.router
        if settings.generation_reuse:  # a copy of a raw event reuses its recorded verdict
            judgements = install_judgements(line)
    gateway = Gateway(
        book,
        router,
        max_pixels=settings.max_image_pixels,
        detector=default_detector(),
        runner=CheckRunner(settings.check_timeout_s),
        limits=AssetLimits.from_settings(settings),
        judgements=judgements,
    )
    metrics = GatewayMetrics.build(line.registry)
    overdue_checks_gauge(line.registry, gateway.runner)
    # Re-generations carry the line's origin mark: generate refuses attempt > 1 without one.
    gatekeeper = Gatekeeper.from_settings(settings)

    def ends_crashed(raw: RawAsset) -> CrashOutcome:
        """A crash ends the request FAILED (``stage.crashed``) through deliver."""

        async def publish(message: str) -> bool:
            value = codecs.validated.encode(crashed(raw, message))
            await io.send(topics.rejected, raw.request.request_id, value, "rejected")
            return True

        return publish

    async def send_shadow(validated: ValidatedAsset, headers: list[tuple[str, bytes]]) -> None:
        value = codecs.validated.encode(validated)
        key = validated.raw.request.request_id
        await io.send(topics.shadows, key, value, "shadows", headers=headers)

    async def send_judge_alerts() -> None:
        for alert in gateway.drain_alerts():
            await io.send(topics.alerts, alert.alert_id, codecs.alert.encode(alert), "alerts")

    pool = stage_pool(line, STAGE, settings.validate_concurrency)

    def place(event: Any) -> Place:
        """The request's priority and tenant (a judge call waits in the same order at the
        provider); shadows after every real request; keyed by request."""
        raw = peek(codecs.raw, event)
        if raw is None:
            return Place()
        schedule = schedule_of(raw.request)
        rank = SHADOW_RANK if is_shadow(raw) else schedule.rank
        return Place(rank, schedule.flow, raw.request.request_id)

    @line.app.agent(topics.raw, name=STAGE)
    async def validate_stage(stream: Any) -> None:
        await feed_pool(stream, pool, line.app, place=place, handle=handle)

    async def handle(event: Any) -> None:
        async with io.handling(event) as crash:
            raw = await io.decode(codecs.raw, event)
            if raw is None:
                return
            if is_shadow(raw):  # judged and recorded on .shadows only; ends nothing
                await validate_shadow(
                    raw, gateway, line.blobs.get_async, send_shadow, send_judge_alerts
                )
                return
            crash.arm(ends_crashed(raw))
            validated, decision = await gateway.assess(raw, line.blobs.get_async)
            for alert in gateway.drain_alerts():  # the judge's breaker or budget
                alert_value = codecs.alert.encode(alert)
                await io.send(topics.alerts, alert.alert_id, alert_value, "alerts")
            metrics.observe(validated)
            key = raw.request.request_id
            if decision.retry is not None:
                value = codecs.request.encode(decision.retry)
                mark = [gatekeeper.mark(value)]
                again = topics.requests_for(decision.retry.priority)  # HIGH: .requests.urgent
                await io.send(again, key, value, "requests", headers=mark)
                crash.disarm()  # the next attempt carries the request on
            value = codecs.validated.encode(validated)
            if decision.disposition is Disposition.REVIEW:
                await io.send(topics.review, key, value, "review")
                crash.disarm()  # a person ends it now
            if decision.disposition is Disposition.APPROVED:
                await io.send(topics.approved, key, value, "approved")
            else:
                await io.send(topics.rejected, key, value, "rejected")


def install_judgements(line: Line) -> JudgeRecords:
    """The judge's verdict records: a table on ``.judgements`` (co-partitioned with ``.raw``,
    read by the workers that validate), its memory bounded like the changelog."""
    metrics = judgement_metrics(line.registry)
    table = install_record_table(line, "judgements", line.topics.judgements, metrics)
    return JudgeRecords(table, metrics)
