"""The deliver stage: approved -> sink -> DELIVERED; rejected -> REJECTED/FAILED; once each.

Deliveries run concurrently in a :class:`streams.stage_pool.StagePool` (``deliver_concurrency``
at once, by priority then tenant fair share), so a destination taking seconds per asset does not
cap the line. Each job is keyed by its request id: one request's events (an approval, a
rejection, a watchdog timeout) are handled one at a time, in order, so the ledger check and the
ledger write of one event are never interleaved with another event of the same request, and
the exactly-one-completion promise holds as it did with one event at a time. An asset for a
destination runs in that destination's lane (its name; each asset goes to exactly one, see
``Destinations.name_for``), at most ``deliver_destination_concurrency`` (or the destination's
``max_in_flight``) at once: a slow or dead destination fills only its own lane, and what waits
for it waits aside without taking a running slot. Rejections touch no destination: no lane.

A lane holds at most ``deliver_lane_max_waiting`` deliveries waiting; the next ones (with
every later event of their request then in the worker) are deferred: written to
``.deliver.deferred`` (agents/deliver/deferral.py) and only then acknowledged. Without that
bound a dead destination, every asset of it costing timeout x attempts, filled the pool's whole
waiting room and the stage took no event for any tenant. A second agent takes that topic back
into the same pool once each record is due (as generate's ``.requests.urgent`` agent does);
a destination still over its bound defers it again, a longer wait each time.

Each destination has a circuit breaker (``streams.circuit_breaker``): after
``deliver_breaker_failures`` consecutive deliveries failed by the destination itself (a
retryable error the retries did not get past: timeouts, connection errors, 5xx, 429) it opens,
and its next approved assets are deferred the same way, due no earlier than the breaker lets a
probe through, instead of each costing timeout x attempts and ending FAILED. After
``deliver_breaker_reset_s`` one delivery goes out as a probe: delivered, the breaker closes and
the deferred ones are delivered as they come due; failed, it opens again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from agents.deliver.cloudevents import completion_headers, data_schema, event_source
from agents.deliver.completion import completion, crashed, ends_request, status_for_unapproved
from agents.deliver.deferral import (
    Deferral,
    defer_delay_s,
    deferral_of,
    deferred_headers,
    due_at_s,
)
from agents.deliver.deliver_one import Verdict, deliver_approved, earlier_completion
from agents.deliver.destinations import Destinations, load_destinations
from agents.deliver.ledger import LedgerTable, already_completed, ledger_storage
from agents.deliver.metadata.c2pa_manifest import load_c2pa_signing
from agents.deliver.provenance import Labeller
from agents.deliver.sinks.retry import RetryingSink
from agents.deliver.watchdog_task import install_watchdog
from agents.deliver.webhook_jobs import jobs_for
from agents.inference.routing.versions import SHADOW
from agents.policy import load_profiles
from agents.scheduling import schedule_of, stage_pool
from agents.tenants import load_tenancy
from schemas.records import CompletionStatus, ValidatedAsset
from streams.circuit_breaker import BreakerState, CircuitBreaker
from streams.pooled_stage import Place, feed_pool, spill_to
from streams.stage_io import CrashOutcome, StageIO, message_headers, peek
from streams.stage_pool import StagePool

if TYPE_CHECKING:
    from streams.app import Line

STAGE = "deliver"
#: The agent taking ``.deliver.deferred`` back into the stage's pool.
DEFERRED_AGENT = "deliver-deferred"
#: Destination label of a deferred record whose request did not decode.
UNKNOWN_DESTINATION = "unknown"

log = logging.getLogger(__name__)


def delivery_place(
    validated: ValidatedAsset | None, approved: bool, destinations: Destinations, message_key: Any
) -> Place:
    """An event's place in the deliver pool (see the module docstring): rank and tenant, keyed
    by request id, in its destination's lane when it is an asset to deliver. Undecodable bytes
    (``handle`` dead-letters them) are keyed by the message key, the request id of every record
    the line writes, so they never run beside another event of their request either."""
    if validated is None:
        if isinstance(message_key, bytes):
            message_key = message_key.decode("utf-8", "replace")
        return Place(key=message_key if isinstance(message_key, str) else None)
    request = validated.raw.request
    schedule = schedule_of(request)
    lane = None
    if approved and ends_request(validated):
        lane = destinations.name_for(request.tenant, request.campaign_id)
    return Place(schedule.rank, schedule.flow, request.request_id, lane)


class DeferralMetrics:
    """``assetline_deliveries_deferred_total{destination}`` and, read at scrape time,
    ``assetline_deliver_lane_waiting{destination}``: label values are the destinations
    file's names (and ``unknown``), a bounded set."""

    def __init__(self, line: Line, pool: StagePool, destinations: Destinations) -> None:
        self.deferred = Counter(
            "assetline_deliveries_deferred",
            "Deliveries written to .deliver.deferred because their destination already had "
            "deliver_lane_max_waiting waiting or its circuit breaker was open, by destination.",
            ["destination"],
            registry=line.registry,
        )
        line.registry.register(_LanesWaiting(pool, sorted(destinations.sinks)))


class _LanesWaiting(Collector):
    def __init__(self, pool: StagePool, names: list[str]) -> None:
        self.pool = pool
        self.names = names

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "assetline_deliver_lane_waiting",
            "Deliveries waiting in this worker for room in their destination's in-flight "
            "limit (at most deliver_lane_max_waiting; the next are deferred).",
            labels=["destination"],
        )
        waiting = self.pool.lanes_parked()
        for name in self.names:
            family.add_metric([name], waiting.get(name, 0))
        yield family


class _BreakersOpen(Collector):
    """``assetline_destination_breaker_open{destination}``, read at scrape time."""

    def __init__(self, breakers: dict[str, CircuitBreaker]) -> None:
        self.breakers = breakers

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "assetline_destination_breaker_open",
            "1 while the destination's circuit breaker is open or half-open (its deliveries "
            "are deferred until a probe succeeds), 0 while closed.",
            labels=["destination"],
        )
        for name in sorted(self.breakers):
            closed = self.breakers[name].state is BreakerState.CLOSED
            family.add_metric([name], 0 if closed else 1)
        yield family


def breaker_changed(name: str, state: BreakerState) -> None:
    """Log a destination breaker's opening (WARNING) and closing (INFO): names only."""
    if state is BreakerState.OPEN:
        log.warning(
            "deliver: destination %s is failing: its circuit breaker opened; its deliveries "
            "are deferred until a probe gets through",
            name,
        )
    elif state is BreakerState.CLOSED:
        log.info("deliver: destination %s answers again: its circuit breaker closed", name)


def report_verdict(breaker: CircuitBreaker, verdicts: list[Verdict]) -> None:
    """Tell ``breaker`` how the delivery it admitted went (no verdict: it is released)."""
    verdict = verdicts[-1] if verdicts else Verdict.NONE
    if verdict is Verdict.FAILED:
        breaker.record_failure()
    elif verdict is Verdict.ANSWERED:
        breaker.record_success()
    else:
        breaker.release()


def destination_breakers(line: Line, names: Iterable[str]) -> dict[str, CircuitBreaker]:
    """One breaker per destination, its state a gauge on the line's registry."""
    settings = line.settings
    breakers = {
        name: CircuitBreaker(
            name,
            failure_threshold=settings.deliver_breaker_failures,
            reset_after_s=settings.deliver_breaker_reset_s,
            on_change=breaker_changed,
        )
        for name in names
    }
    line.registry.register(_BreakersOpen(breakers))
    return breakers


def install(line: Line) -> None:
    io = StageIO(line, STAGE)
    codecs = line.codecs
    topics = line.topics
    settings = line.settings
    destinations = load_destinations(
        settings.destinations_file, settings.api_keys, settings.delivery_dir
    )
    retry = destinations.retry
    tenancy = load_tenancy(settings.tenants_file, settings.api_keys)  # callback secrets
    sinks = {
        name: RetryingSink(sink, retry.attempts, retry.base_delay_s, max_delay_s=retry.max_delay_s)
        for name, sink in destinations.sinks.items()
    }
    label = Labeller(
        load_profiles(settings.profiles_dir),
        include_prompt=settings.metadata_include_prompt,
        enabled=settings.stamp_metadata,
        c2pa=load_c2pa_signing(
            settings.c2pa_cert_file,
            settings.api_keys,
            key_name=settings.c2pa_key_secret,
            algorithm=settings.c2pa_algorithm,
            tsa_url=settings.c2pa_tsa_url,
        ),
    )
    ledger = LedgerTable(
        line.app,
        name="completions",
        beacon=line.app.tables.beacon,
        changelog_topic=topics.completed,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.topic_partitions,
        **ledger_storage(settings.ledger_store),  # on disk: restarts read only what is new
    )
    line.app.tables.add(ledger)
    install_watchdog(line, ledger)  # requests open past their deadline end FAILED
    source = event_source(settings.topic_prefix)
    dataschema = data_schema(codecs.completed.fingerprint)
    sources = line.app.topic(
        topics.names.approved,
        topics.names.rejected,
        key_serializer="raw",
        value_serializer="raw",
    )

    def ends_crashed(validated: ValidatedAsset) -> CrashOutcome:
        """A crash ends the request here: FAILED (``stage.crashed``), through the ledger."""

        async def publish(message: str) -> bool:
            request = validated.raw.request
            key = request.request_id.encode("utf-8")
            if already_completed(ledger.get(key), request.attempt, codecs.completed.decode):
                return False  # completed before the crash: one completion is the promise
            done = crashed(validated, message)
            try:
                hooks = destinations.webhooks_for(request.tenant, request.campaign_id)
                for job in jobs_for(request, done, hooks, tenancy):
                    value = codecs.webhook_job.encode(job)
                    await io.send(topics.webhooks, request.request_id, value, "webhooks")
            except Exception:  # the completion matters more; the dead letter keeps the event
                line.metrics.errors.labels(STAGE, "webhooks.not_queued").inc()
                log.exception("deliver: webhooks of crashed %s not queued", request.request_id)
            headers = completion_headers(done, source=source, dataschema=dataschema)
            ledger.publish(key, codecs.completed.encode(done), headers)  # -> .completed
            line.metrics.completions.labels(done.status.value).inc()
            line.metrics.events_out.labels(STAGE, "completed").inc()
            return True

        return publish

    names = topics.names

    def source_of(message: Any) -> str | None:
        """The topic an event stands for: a deferred record's original one (None: unknown)."""
        if message.topic != names.deliver_deferred:
            return str(message.topic)
        source = deferral_of(message_headers(message)).source
        return source if source in (names.approved, names.rejected) else None

    async def defer(event: Any, earliest_s: float = 0.0) -> None:
        """Write ``event`` to ``.deliver.deferred``, due after a wait that doubles with each
        deferral, and no sooner than ``earliest_s`` (up to ``deliver_defer_max_s``); returns
        once Kafka acknowledged it (the pool acknowledges the event then). A failed write is
        retried with backoff: the event stays unacknowledged meanwhile."""
        message = event.message
        headers = message_headers(message)
        before = deferral_of(headers) if message.topic == names.deliver_deferred else Deferral()
        count = before.count + 1
        delay = defer_delay_s(count, settings.deliver_defer_base_s, settings.deliver_defer_max_s)
        delay = max(delay, min(earliest_s, settings.deliver_defer_max_s))
        validated = peek(codecs.validated, event)
        destination = UNKNOWN_DESTINATION
        if validated is not None:
            request = validated.raw.request
            destination = destinations.name_for(request.tenant, request.campaign_id)
        await io.send_acknowledged(
            topics.deliver_deferred,
            message,
            message.key,
            message.value,
            lambda: deferred_headers(
                headers,
                source=source_of(message) or str(message.topic),
                destination=destination,
                due_ms=int((time.time() + delay) * 1000),
                count=count,
            ),
            what="deferred delivery",
            code="deferred.send_failed",
        )
        metrics.deferred.labels(destination).inc()
        line.metrics.events_out.labels(STAGE, "deferred").inc()
        io.handled(event)  # its offset may be committed past: the copy carries it on
        log.debug(  # a dead destination defers thousands: the counter says how many
            "deliver: %s deferred for destination %s (%d time(s), due in %.1f s)",
            validated.raw.request.request_id if validated is not None else message.key,
            destination,
            count,
            delay,
        )

    pool = stage_pool(
        line,
        STAGE,
        settings.deliver_concurrency,
        lane_limit=lambda lane: destinations.in_flight_limit(
            lane, settings.deliver_destination_concurrency
        ),
        lane_max_waiting=lambda _lane: settings.deliver_lane_max_waiting,
        spill=spill_to(defer),
    )
    metrics = DeferralMetrics(line, pool, destinations)
    breakers = destination_breakers(line, sorted(destinations.sinks))

    def place(event: Any) -> Place:
        message = event.message
        approved = source_of(message) == names.approved
        return delivery_place(peek(codecs.validated, event), approved, destinations, message.key)

    def due(event: Any) -> float:
        deferral = deferral_of(message_headers(event.message))
        return due_at_s(deferral, time.time(), settings.deliver_defer_max_s)

    @line.app.agent(sources, name=STAGE)
    async def deliver(stream: Any) -> None:
        await feed_pool(stream, pool, line.app, place=place, handle=handle)

    # Deferred deliveries, each fed to the same pool once due: only this agent waits for
    # that. Co-partitioned with .approved (same key): its events write the same ledger
    # partitions.
    @line.app.agent(topics.deliver_deferred, name=DEFERRED_AGENT)
    async def deliver_deferred(stream: Any) -> None:
        await feed_pool(
            stream,
            pool,
            line.app,
            place=place,
            handle=handle,
            due=due,
            longest_wait_s=settings.deliver_defer_max_s,
        )

    async def handle(event: Any) -> None:
        async with io.handling(event) as crash:
            source = source_of(event.message)
            if source is None:  # a deferred record that does not say what it was
                await io.dead_letter(event, "deliver.deferred_source", "no source topic")
                return
            validated = await io.decode(codecs.validated, event)
            if validated is None:
                return
            if validated.raw.rung == SHADOW:  # a shadow copy never completes (versions.py)
                line.metrics.events_out.labels(STAGE, "shadow_ignored").inc()
                return
            if not ends_request(validated):
                line.metrics.events_out.labels(STAGE, "detour").inc()
                return  # the request lives on: a new attempt, or a person, will end it
            request = validated.raw.request
            key = request.request_id.encode("utf-8")
            entry = ledger.get(key)
            if already_completed(entry, request.attempt, codecs.completed.decode):
                line.metrics.duplicates.labels(STAGE).inc()
                return
            crash.arm(ends_crashed(validated))
            if source == names.approved:
                destination = destinations.name_for(request.tenant, request.campaign_id)
                breaker, sink = breakers[destination], sinks[destination]
                # The last completion says which bytes the request's name already holds.
                earlier = earlier_completion(entry, codecs.completed.decode)
                if not breaker.allow():
                    # Open (or its probe out): wait on .deliver.deferred, not in timeout x
                    # attempts. Nothing may raise between allow() and the try below: a probe
                    # slot taken and never reported would keep the breaker half-open for good.
                    await defer(event, earliest_s=breaker.retry_in_s())
                    return
                verdicts: list[Verdict] = []
                try:
                    done = await deliver_approved(
                        validated, line.blobs, sink, label, earlier, on_verdict=verdicts.append
                    )
                finally:  # a cancel (no verdict) frees a probe slot it held
                    report_verdict(breaker, verdicts)
                if done.status is CompletionStatus.FAILED:
                    # An approved asset that did not land is kept for a re-drive.
                    code, _, reason = done.reasons[0].partition(": ")
                    await io.dead_letter(event, code, reason)
            else:
                done = completion(validated, status_for_unapproved(validated))
            # Webhook jobs go out before the ledger write: a crash in between re-sends them
            # (same webhook-id, receivers deduplicate) instead of losing them.
            hooks = destinations.webhooks_for(request.tenant, request.campaign_id)
            for job in jobs_for(request, done, hooks, tenancy):
                value = codecs.webhook_job.encode(job)
                await io.send(topics.webhooks, request.request_id, value, "webhooks")
            headers = completion_headers(done, source=source, dataschema=dataschema)
            ledger.publish(key, codecs.completed.encode(done), headers)  # -> .completed
            line.metrics.completions.labels(done.status.value).inc()
            if done.location is not None:
                line.metrics.delivered_attempts.observe(done.attempt)
            line.metrics.events_out.labels(STAGE, "completed").inc()
