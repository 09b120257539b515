"""The model router: one request through its alias's chain of pinned models.

Per rung: cost pre-check, rate limit, circuit breaker, the call, retries with full-jitter
backoff (honouring ``Retry-After``), then failover to the next rung. A refusal stops the
request (routing around a content policy is not the router's call to make). The whole thing
runs under the request's latency budget, which cancels the call in flight when it runs out.

The validate stage's AI judge calls one pinned model through :meth:`ModelRouter.call_pinned`:
the same rate limit, breaker, budget check, retries and spend booking (in the judge's spend
lane), under the judge's own timeout and price, with no failover or fallback.

Every call made or skipped becomes a :class:`ProviderAttempt`, so the completion event
explains itself; what to alert on comes back as :class:`Alert` records for the agent to
publish. Nothing here raises for a provider's or a request's fault.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TypeVar

from prometheus_client import CollectorRegistry

from agents.inference.batch import BatchCollector, BatchLanes, Ticket, bounded, prompt_digest
from agents.inference.call_span import call_span, record_outcome
from agents.inference.prompt import render_prompt
from agents.inference.providers.base import (
    Attachment,
    Generated,
    Provider,
    ProviderCall,
    ProviderError,
    Usage,
)
from agents.inference.routing.adaptive_limit import DEFAULT_MAX_IN_FLIGHT, AdaptiveLimit, Signal
from agents.inference.routing.backoff import RetryPolicy
from agents.inference.routing.budget import (
    BudgetGuard,
    BudgetViolation,
    MemorySpendBook,
    estimate_usage,
)
from agents.inference.routing.config import (
    Alias,
    ChainEntry,
    OfflineConfig,
    ProviderSpec,
    RetryDefaults,
    RoutingConfig,
)
from agents.inference.routing.metrics import BREAKER_STATE_VALUES, ProviderMetrics
from agents.inference.routing.plan import Plan, RoutingError, plan_for
from agents.inference.routing.rate_limit import RateLimitTimeout, TokenBucket
from agents.inference.routing.spend import GENERATE_LANE
from agents.scheduling import NORMAL_RANK, schedule_of
from schemas.records import Alert, AlertKind, GenerationRequest, ProviderAttempt
from streams.circuit_breaker import STATE_DETAIL, BreakerState, CircuitBreaker
from streams.stage_pool import stepping_aside

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Error codes of the router's own verdicts (the adapters' codes are ``provider.*``).
BUDGET_EXCEEDED = "budget_exceeded"
#: The request's deadline (created_at + latency budget) passed before a call could start.
DEADLINE_EXCEEDED = "deadline_exceeded"
COST_BUDGET_EXCEEDED = "cost_budget_exceeded"
BREAKER_OPEN = "breaker.open"
RATE_LIMITED_LOCALLY = "ratelimit.wait_exceeds_budget"


@dataclass
class RouteResult:
    """What happened to one request: served, or why not; plus the audit trail and alerts."""

    request: GenerationRequest
    alias: str | None
    attempts: list[ProviderAttempt] = field(default_factory=list)
    cost: float = 0.0
    generated: Generated | None = None
    served_by: ChainEntry | None = None
    error: ProviderError | None = None
    alerts: list[Alert] = field(default_factory=list)
    fallback_allowed: bool = False

    @property
    def last_provider(self) -> str:
        return self.attempts[-1].provider if self.attempts else ""

    @property
    def last_model(self) -> str:
        return self.attempts[-1].model if self.attempts else ""


@dataclass
class _InFlight:
    entry: ChainEntry
    started: float


@dataclass
class _Run:
    request: GenerationRequest
    plan: Plan
    prompt: str
    deadline: float
    result: RouteResult
    in_flight: _InFlight | None = None
    blocked: BudgetViolation | None = None
    attachments: tuple[Attachment, ...] = ()
    lane: str = GENERATE_LANE


class ModelRouter:
    """Routes requests for one worker; breakers and buckets are per provider and shared."""

    _batches: BatchLanes | None = None

    @property
    def batches(self) -> BatchLanes | None:
        """The aliases' batch rungs (set by the worker when the routing file has any); their
        batch API exchanges go through this router's limits and breakers."""
        return self._batches

    @batches.setter
    def batches(self, lanes: BatchLanes | None) -> None:
        if lanes is not None:
            lanes.guard_with(self._batch_http)
        self._batches = lanes

    def __init__(
        self,
        config: RoutingConfig,
        providers: Mapping[str, Provider],
        guard: BudgetGuard,
        metrics: ProviderMetrics,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        weight: Callable[[str], float] | None = None,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        missing = sorted(set(config.providers) - set(providers))
        if missing:
            raise ValueError(f"no adapter built for provider(s) {missing}")
        self.config = config
        self.providers = dict(providers)
        self.guard = guard
        self.metrics = metrics
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        self._pending_alerts: list[Alert] = []
        self.breakers = {
            name: CircuitBreaker(
                name,
                failure_threshold=spec.breaker.failure_threshold,
                reset_after_s=spec.breaker.reset_after_s,
                clock=clock,
                on_change=self._breaker_changed,
            )
            for name, spec in config.providers.items()
        }
        self.buckets = {
            name: TokenBucket(spec.rate_limit.per_second, spec.rate_limit.burst, clock=clock)
            for name, spec in config.providers.items()
            if spec.rate_limit is not None
        }
        #: Calls in flight per provider, learned from its answers; waiters in the line's order.
        self.limits = {
            name: AdaptiveLimit(
                name,
                maximum=spec.max_in_flight or DEFAULT_MAX_IN_FLIGHT,
                weight=weight,
                clock=clock,
                on_change=self._limit_changed,
            )
            for name, spec in config.providers.items()
        }
        for name, limit in self.limits.items():
            metrics.in_flight_limit.labels(name).set(limit.limit)
        for name in self.breakers:
            metrics.breaker_state.labels(name).set(0)
        for name, bucket in self.buckets.items():
            metrics.rate_limit.labels(name).set(bucket.rate_per_s)
        #: Live workers of the group sharing the rate limits (see set_group_size).
        self.group_size = 1
        metrics.group_members.set(1)

    def set_group_size(self, workers: int) -> None:
        """Split every provider's rate limit evenly over ``workers`` live workers of the group,
        so the group as a whole stays under each provider's limit (called after each
        rebalance with the group's membership)."""
        workers = max(1, workers)
        if workers != self.group_size and self.buckets:
            log.info(
                "%d live worker(s) in the group: each takes 1/%d of a rate limit", workers, workers
            )
        self.group_size = workers
        self.metrics.group_members.set(workers)
        for name, bucket in self.buckets.items():
            bucket.set_share(1.0 / workers)
            self.metrics.rate_limit.labels(name).set(bucket.rate_per_s)

    def peer_breaker_opened(self, provider: str, opened_ago_s: float = 0.0) -> bool:
        """Another worker of the group opened its breaker of ``provider`` ``opened_ago_s``
        ago: open ours too, for the rest of this worker's ``reset_after_s`` (then it probes on
        its own). True when it opened."""
        breaker = self.breakers.get(provider)
        if breaker is None or not breaker.trip(opened_ago_s):
            return False
        self.metrics.breaker_state.labels(provider).set(BREAKER_STATE_VALUES["open"])
        log.warning(
            "circuit breaker of provider %s opened: another worker opened its own", provider
        )
        return True

    def peer_breaker_closed(self, provider: str, closed_ago_s: float = 0.0) -> bool:
        """Another worker of the group closed its breaker of ``provider`` ``closed_ago_s`` ago
        (its probe succeeded): close ours too when it is open only because a peer's opened
        (see :meth:`CircuitBreaker.untrip`). True when it closed."""
        breaker = self.breakers.get(provider)
        if breaker is None or not breaker.untrip(closed_ago_s):
            return False
        self.metrics.breaker_state.labels(provider).set(BREAKER_STATE_VALUES["closed"])
        log.info("circuit breaker of provider %s closed: another worker closed its own", provider)
        return True

    async def route(self, request: GenerationRequest) -> RouteResult:
        try:
            plan = plan_for(request, self.config)
        except RoutingError as exc:
            result = RouteResult(request, request.model.alias)
            result.error = ProviderError(exc.code, exc.message)
            return result
        budget_s = plan.latency_budget_ms / 1000.0
        deadline_s = deadline_after_s(request, budget_s)
        remaining_s = deadline_remaining_s(request, deadline_s, self._wall_clock())
        result = RouteResult(request, plan.alias, fallback_allowed=plan.fallback is not None)
        if remaining_s <= 0:
            return self._deadline_passed(request, deadline_s, result, -remaining_s)
        prompt = render_prompt(request)
        if self.batches is not None:
            ticket = self._ticket(request, plan.alias, prompt)
            found = self.batches.collector_for(
                request, plan.alias, remaining_s, budget_s, resuming=ticket is not None
            )
            if found is not None and await self._batched(
                request, plan, prompt, result, *found, ticket=ticket
            ):
                return result
            remaining_s = deadline_remaining_s(request, deadline_s, self._wall_clock())
            if remaining_s <= 0:
                return self._deadline_passed(request, deadline_s, result, -remaining_s)
        # This run gets the alias's budget, or what is left of the deadline if that is less.
        run_s = min(budget_s, remaining_s)
        run = _Run(request, plan, prompt, self._clock() + run_s, result)
        return await self._execute(run, run_s)

    async def _batched(
        self,
        request: GenerationRequest,
        plan: Plan,
        prompt: str,
        result: RouteResult,
        collector: BatchCollector,
        give_up_at: float,
        *,
        ticket: Ticket | None = None,
    ) -> bool:
        """Wait for the request's answer from its alias's batch rung (see
        :mod:`agents.inference.batch`): priced at the batch price, booked like any call and
        recorded ``batched``. True when that settles the request (served, or refused by a
        content policy); False sends it through the chain: the batch failed, left it out, or
        had not answered at ``give_up_at``, when the deadline has one synchronous run left.

        With a ``ticket`` (a previous owner of the request put its call into a batch) that
        batch is followed, nothing is submitted and no pre-check applies (the call is paid
        already); an intent ticket is first looked up (:meth:`_intended`). Otherwise the
        request's place in its new batch is recorded: its intent once the calls' file is
        uploaded (clients that upload first), its batch as soon as the batch exists. An answer
        that comes after the give-up is booked then (its cost into the request's budgets, in
        this request's lane and partition), never served.
        """
        entry = collector.rung.entry
        if ticket is not None and ticket.intent:
            started = self._clock()
            try:
                ticket = await self._intended(request, collector, ticket, give_up_at)
            except ProviderError as exc:  # whether its batch exists is not known: the chain
                run = _Run(request, plan, prompt, started, result)
                self._record(run, entry, exc, self._clock() - started, batched=True)
                return False
            lanes = self.batches
            if (
                ticket is None
                and lanes is not None
                and not lanes.window_fits(collector, give_up_at)
            ):
                return False  # no time left for a new batch's window
        if ticket is None and self.guard.check(
            request, entry.price.cost(estimate_usage(entry, request, prompt))
        ):
            return False  # the chain's own pre-check gives the verdict
        call = ProviderCall(
            request=request,
            prompt=prompt,
            model=entry.wire_model,
            timeout_s=entry.timeout_s,
            max_output_tokens=entry.max_output_tokens,
            params=entry.params,
        )
        started = self._clock()
        lane = GENERATE_LANE

        def book_late(late: Generated | ProviderError) -> None:
            self._book_late(request, entry, late, lane)

        tickets = self.batches.tickets if self.batches is not None else None

        async def recorded(batch_id: str, custom_id: str) -> None:
            if tickets is not None:
                digest = prompt_digest(prompt)
                place = Ticket(entry.provider, entry.wire_model, batch_id, custom_id, digest)
                await tickets.record(request, place)

        async def intended(input_file_id: str, custom_id: str) -> bool:
            if tickets is None:
                return False
            digest = prompt_digest(prompt)
            intent = Ticket(entry.provider, entry.wire_model, "", custom_id, digest, input_file_id)
            return await tickets.record(request, intent)

        async with stepping_aside():  # a wait of minutes to a day holds no pool slot
            if ticket is not None:
                outcome = await collector.resume(
                    call, ticket.batch_id, ticket.custom_id, give_up_at, on_late=book_late
                )
            else:
                outcome = await collector.run(
                    call,
                    give_up_at,
                    on_submitted=recorded if tickets is not None else None,
                    on_late=book_late,
                    on_intent=intended if tickets is not None else None,
                )
        run = _Run(request, plan, prompt, started, result)
        self._record(run, entry, outcome, self._clock() - started, batched=True)
        if isinstance(outcome, Generated):
            result.generated, result.served_by = outcome, entry
        elif outcome.refusal:  # a content policy: final, as on the chain
            result.error, result.fallback_allowed = outcome, False
        else:
            return False
        result.alerts[:0] = self._drain_alerts()
        return True

    async def _intended(
        self,
        request: GenerationRequest,
        collector: BatchCollector,
        intent: Ticket,
        give_up_at: float,
    ) -> Ticket | None:
        """The ticket of the batch a previous owner created from the intent's input file
        (recorded, so a later owner needs no lookup), or None when the create never happened
        (the call is batched anew). Raises :class:`ProviderError` when the lookup keeps
        failing (see :meth:`BatchCollector.created_from`)."""
        who = f"{request.request_id} attempt {request.attempt}"
        try:
            async with stepping_aside():  # an open breaker may hold the lookup until the give-up
                batch_id = await collector.created_from(intent.input_file_id, give_up_at)
        except ProviderError as exc:
            log.warning(
                "%s: no telling whether a batch was created from %s (%s): the synchronous chain",
                who,
                intent.input_file_id,
                exc.code,
            )
            raise
        if batch_id is None:
            log.info("%s: no batch was created from %s: the call is new", who, intent.input_file_id)
            return None
        log.info("%s: following batch %s, created from %s", who, batch_id, intent.input_file_id)
        found = replace(intent, batch_id=batch_id)
        tickets = self.batches.tickets if self.batches is not None else None
        if tickets is not None:
            try:
                await tickets.record(request, found)
            except Exception:  # unrecorded: a later owner looks the batch up again
                log.exception("recording a batched call's place failed")
        return found

    def _ticket(self, request: GenerationRequest, alias: str | None, prompt: str) -> Ticket | None:
        """The batch a previous owner of this (request, attempt) put its call into, when it
        is for this alias's batch rung and the same prompt (else the call is batched anew)."""
        lanes = self.batches
        tickets = lanes.tickets if lanes is not None else None
        collector = lanes.collectors.get(alias) if lanes is not None and alias else None
        if tickets is None or collector is None:
            return None
        found = tickets.find(request)
        entry = collector.rung.entry
        if found is None or (found.provider, found.model) != (entry.provider, entry.wire_model):
            return None
        return found if found.prompt_sha256 == prompt_digest(prompt) else None

    def _book_late(
        self,
        request: GenerationRequest,
        entry: ChainEntry,
        outcome: Generated | ProviderError,
        lane: str,
    ) -> None:
        """A batched answer that came after its request went to the chain: billed, so booked
        into the request's budgets and the cost metrics; its completion is not touched."""
        cost = entry.price.cost(outcome.usage)
        if cost <= 0:
            return
        self.guard.charge(request, cost, lane)
        labels = (entry.provider, entry.model)
        self.metrics.cost.labels(*labels).inc(cost)
        self.metrics.tokens.labels(*labels, "input").inc(outcome.usage.input_tokens)
        self.metrics.tokens.labels(*labels, "output").inc(outcome.usage.output_tokens)

    async def _batch_http(
        self, provider: str, op: Callable[[], Awaitable[T]], timeout_s: float
    ) -> T:
        """One batch API operation under the provider's in-flight limit and circuit breaker,
        like a call: failures open the breaker (an open one refuses with ``breaker.open`` and
        its wait as ``retry_after_s``), a 429 shrinks the limit and is not a failure, and the
        operation is bounded by ``timeout_s``. Its latency teaches the limit nothing (a
        results download is not a call)."""
        breaker = self.breakers[provider]
        async with self.limits[provider].slot(
            priority=NORMAL_RANK, flow=f"batch:{provider}"
        ) as permit:
            if not breaker.allow():
                raise ProviderError(
                    BREAKER_OPEN,
                    f"circuit open; next probe in {breaker.retry_in_s():.1f}s",
                    retryable=True,
                    retry_after_s=breaker.retry_in_s(),
                )
            try:
                result = await bounded(provider, op, timeout_s)
            except ProviderError as exc:
                signal = load_signal(exc)
                permit.done(Signal.IGNORE if signal is Signal.OK else signal)
                record_verdict(breaker, exc)
                raise
            except asyncio.CancelledError:
                breaker.release()
                raise
            except Exception:
                breaker.record_failure()
                raise
            breaker.record_success()
            return result

    async def call_pinned(
        self,
        request: GenerationRequest,
        prompt: str,
        entry: ChainEntry,
        *,
        latency_budget_s: float,
        attachments: tuple[Attachment, ...] = (),
        lane: str,
    ) -> RouteResult:
        """One pinned model outside any alias (the AI judge), as a one-rung chain.

        The call gets what a rung of a chain gets (cost pre-check against the request's
        tenant and campaign, rate limit, breaker, retries, spend booked into ``lane``), under
        its own latency budget, without failover or fallback. ``entry.provider`` must be a
        provider of the routing file.
        """
        if entry.provider not in self.providers:
            raise ValueError(f"no adapter built for provider {entry.provider!r}")
        budget_ms = max(1, round(latency_budget_s * 1000.0))
        plan = Plan(alias=None, chain=(entry,), latency_budget_ms=budget_ms, fallback=None)
        run = _Run(
            request,
            plan,
            prompt,
            self._clock() + latency_budget_s,
            RouteResult(request, None),
            attachments=attachments,
            lane=lane,
        )
        return await self._execute(run, latency_budget_s)

    async def _execute(self, run: _Run, budget_s: float) -> RouteResult:
        timeout = asyncio.timeout(budget_s)
        try:
            async with timeout:
                await self._run_chain(run)
        except TimeoutError:
            if not timeout.expired():
                raise
            self._budget_killed(run, budget_s)
        else:
            self._finish(run)
        run.result.alerts[:0] = self._drain_alerts()
        return run.result

    # --- the chain ---------------------------------------------------------------------------

    async def _run_chain(self, run: _Run) -> None:
        result = run.result
        for entry in run.plan.chain:
            if await self._try_entry(run, entry):
                return
            if result.error is not None and result.error.refusal:
                return

    async def _try_entry(self, run: _Run, entry: ChainEntry) -> bool:
        """True when this rung served the request; False means: fail over (or stop)."""
        policy = RetryPolicy(
            max_retries=entry.max_retries,
            base_s=self.config.retry.base_s,
            cap_s=self.config.retry.cap_s,
            max_retry_after_s=self.config.retry.max_retry_after_s,
        )
        breaker = self.breakers[entry.provider]
        for retry in range(entry.max_retries + 1):
            estimate = entry.price.cost(estimate_usage(entry, run.request, run.prompt))
            violation = self.guard.check(run.request, estimate)
            if violation is not None:
                run.blocked = violation
                self._skip(run, entry, COST_BUDGET_EXCEEDED, violation.message)
                return False
            outcome = await self._call_in_slot(run, entry, breaker)
            if outcome is None:
                return False  # skipped by the rate limit or the breaker
            if isinstance(outcome, Generated):
                run.result.generated = outcome
                run.result.served_by = entry
                run.result.error = None
                return True
            run.result.error = outcome
            if outcome.refusal or not outcome.retryable or retry == entry.max_retries:
                return False
            delay = policy.delay(retry, outcome.retry_after_s, self._rng)
            if delay >= self._remaining(run):
                return False  # failing over now beats sleeping into the latency budget
            await self._sleep(delay)
        return False

    async def _call_in_slot(
        self, run: _Run, entry: ChainEntry, breaker: CircuitBreaker
    ) -> Generated | ProviderError | None:
        """One call in one of the provider's in-flight slots, waited for in the line's order
        (priority, then the tenant's fair share); None when the rate limit or the breaker
        skipped the rung. The slot is taken first so that a breaker's half-open probe is not
        held while the request waits for room."""
        schedule = schedule_of(run.request)
        limit = self.limits[entry.provider]
        urgent = schedule.rank > NORMAL_RANK
        async with limit.slot(priority=schedule.rank, flow=schedule.flow, urgent=urgent) as permit:
            bucket = self.buckets.get(entry.provider)
            if bucket is not None:
                try:
                    await bucket.acquire(max_wait_s=self._remaining(run))
                except RateLimitTimeout:
                    self._skip(run, entry, RATE_LIMITED_LOCALLY, "rate limit wait exceeds budget")
                    return None
            if not breaker.allow():
                self._skip(
                    run,
                    entry,
                    BREAKER_OPEN,
                    f"circuit open; next probe in {breaker.retry_in_s():.1f}s",
                )
                return None
            outcome = await self._call(run, entry, breaker)
            permit.done(load_signal(outcome))
            return outcome

    async def _call(
        self, run: _Run, entry: ChainEntry, breaker: CircuitBreaker
    ) -> Generated | ProviderError:
        provider = self.providers[entry.provider]
        call = ProviderCall(
            request=run.request,
            prompt=run.prompt,
            model=entry.wire_model,
            timeout_s=max(0.001, min(entry.timeout_s, self._remaining(run))),
            max_output_tokens=entry.max_output_tokens,
            params=entry.params,
            attachments=run.attachments,
        )
        started = self._clock()
        run.in_flight = _InFlight(entry, started)
        outcome: Generated | ProviderError
        spec = self.config.providers.get(entry.provider)
        adapter_type = spec.adapter.type if spec is not None else entry.provider
        try:
            # A GenAI span when spans are exported (agents/inference/call_span.py)
            with call_span(call, entry.provider, adapter_type) as span:
                try:
                    async with asyncio.timeout(entry.timeout_s):
                        outcome = await provider.generate(call)
                except TimeoutError:
                    outcome = ProviderError(
                        "provider.timeout",
                        f"no answer within {entry.timeout_s:g} s",
                        retryable=True,
                    )
                except ProviderError as exc:
                    outcome = exc
                except Exception as exc:  # an adapter bug must not stop the line
                    log.exception("provider %s crashed", entry.provider)
                    outcome = ProviderError("provider.crashed", f"{type(exc).__name__}: {exc}")
                record_outcome(span, outcome)
        except asyncio.CancelledError:
            breaker.release()  # cancelled by the budget: no verdict on the provider's health
            raise
        run.in_flight = None
        elapsed = self._clock() - started
        self._record(run, entry, outcome, elapsed)
        record_verdict(breaker, outcome)
        return outcome

    # --- bookkeeping -------------------------------------------------------------------------

    def _record(
        self,
        run: _Run,
        entry: ChainEntry,
        outcome: Generated | ProviderError,
        elapsed: float,
        *,
        batched: bool = False,
    ) -> None:
        """Book, count and record one call; a batched one's wait is not a call's latency
        (the batch metrics observe it)."""
        usage = outcome.usage
        cost = entry.price.cost(usage)
        self.guard.charge(run.request, cost, run.lane)
        run.result.cost += cost
        labels = (entry.provider, entry.model)
        m = self.metrics
        if not batched:
            m.seconds.labels(*labels).observe(elapsed)
        m.cost.labels(*labels).inc(cost)
        m.tokens.labels(*labels, "input").inc(usage.input_tokens)
        m.tokens.labels(*labels, "output").inc(usage.output_tokens)
        m.images.labels(*labels).inc(usage.images)
        if isinstance(outcome, Generated):
            m.requests.labels(*labels, "ok").inc()
            code = message = None
        else:
            m.requests.labels(*labels, "refused" if outcome.refusal else "error").inc()
            m.errors.labels(*labels, outcome.code).inc()
            code, message = outcome.code, outcome.message
        attempt = _attempt(entry, code, message, elapsed * 1000.0, cost, usage)
        if batched:
            attempt = attempt.model_copy(update={"batched": True})
        run.result.attempts.append(attempt)

    def _skip(self, run: _Run, entry: ChainEntry, code: str, message: str) -> None:
        self.metrics.errors.labels(entry.provider, entry.model, code).inc()
        run.result.attempts.append(_attempt(entry, code, message, 0.0, 0.0, Usage()))

    def _budget_killed(self, run: _Run, budget_s: float) -> None:
        result = run.result
        elapsed_ms = (self._clock() - (run.deadline - budget_s)) * 1000.0
        if run.in_flight is None:
            self._deadline_killed(run, elapsed_ms)
            return
        if run.in_flight is not None:
            entry = run.in_flight.entry
            call_ms = (self._clock() - run.in_flight.started) * 1000.0
            self.metrics.errors.labels(entry.provider, entry.model, BUDGET_EXCEEDED).inc()
            result.attempts.append(
                _attempt(
                    entry, BUDGET_EXCEEDED, "cancelled by the latency budget", call_ms, 0.0, Usage()
                )
            )
        message = (
            f"latency budget of {run.plan.latency_budget_ms} ms exhausted after "
            f"{elapsed_ms:.0f} ms ({len(result.attempts)} attempt(s))"
        )
        result.generated = None
        result.error = ProviderError(BUDGET_EXCEEDED, message)
        result.fallback_allowed = False
        self.metrics.budget_kills.labels(run.plan.alias or "", "latency").inc()
        result.alerts.append(
            self._alert(
                AlertKind.LATENCY_BUDGET_EXCEEDED,
                message,
                run,
                {"budget_ms": str(run.plan.latency_budget_ms), "elapsed_ms": f"{elapsed_ms:.1f}"},
            )
        )

    def _deadline_killed(self, run: _Run, elapsed_ms: float) -> None:
        """The deadline passed while no call was in flight (waiting for a provider's slot or
        between retries): nothing more is sent, nothing more is spent."""
        result = run.result
        waited = "" if result.attempts else " before any call started"
        result.generated = None
        result.error = ProviderError(
            DEADLINE_EXCEEDED,
            f"deadline of {run.plan.latency_budget_ms} ms from created_at passed{waited} "
            f"({elapsed_ms:.0f} ms in this worker)",
        )
        result.fallback_allowed = False
        self.metrics.budget_kills.labels(run.plan.alias or "", "deadline").inc()

    def _deadline_passed(
        self, request: GenerationRequest, deadline_s: float, result: RouteResult, late_s: float
    ) -> RouteResult:
        """The request's deadline passed before the router saw it (it waited that long in
        queues, or is a re-generation that used its time up): fail it unsent."""
        result.error = ProviderError(
            DEADLINE_EXCEEDED,
            f"deadline of {deadline_s * 1000.0:.0f} ms from created_at passed "
            f"{late_s * 1000.0:.0f} ms ago, before any call",
        )
        result.fallback_allowed = False
        self.metrics.budget_kills.labels(result.alias or "", "deadline").inc()
        return result

    def _limit_changed(self, name: str, limit: float) -> None:
        self.metrics.in_flight_limit.labels(name).set(limit)

    def _finish(self, run: _Run) -> None:
        """Turn an exhausted chain into its final verdict."""
        result = run.result
        if result.generated is not None:
            return
        alias = run.plan.alias or ""
        if result.error is not None and result.error.refusal:
            result.fallback_allowed = False
            return
        if run.blocked is not None:
            result.error = ProviderError(COST_BUDGET_EXCEEDED, run.blocked.message)
            result.fallback_allowed = False
            self.metrics.budget_kills.labels(alias, "cost").inc()
            details = {
                "scope": run.blocked.scope,
                "limit_usd": f"{run.blocked.limit:.6f}",
                "spent_usd": f"{run.blocked.spent:.6f}",
                "estimate_usd": f"{run.blocked.estimate:.6f}",
            }
            result.alerts.append(
                self._alert(AlertKind.COST_BUDGET_EXCEEDED, run.blocked.message, run, details)
            )
            return
        failed = [a for a in result.attempts if a.code is not None]
        summary = "; ".join(f"{a.provider}/{a.model}: {a.code}" for a in failed)
        last = result.error
        if last is None:  # every rung was skipped (breaker open, rate limit)
            last_attempt = failed[-1]
            last = ProviderError(last_attempt.code or BREAKER_OPEN, last_attempt.message or "")
        if len(run.plan.chain) > 1 or len(failed) > 1:
            of = f"alias {alias!r}" if run.plan.alias else "the pinned model"
            message = f"all providers of {of} failed ({summary}); last: {last.message}"
            last = ProviderError(last.code, message, retryable=last.retryable)
        result.error = last
        if result.fallback_allowed:
            self.metrics.fallbacks.labels(alias).inc()
        result.alerts.append(
            self._alert(
                AlertKind.ALL_PROVIDERS_FAILED,
                last.message,
                run,
                {"fallback": str(result.fallback_allowed).lower(), "attempts": str(len(failed))},
            )
        )

    def _remaining(self, run: _Run) -> float:
        return max(0.0, run.deadline - self._clock())

    def _alert(self, kind: AlertKind, message: str, run: _Run, details: dict[str, str]) -> Alert:
        request = run.request
        provider = run.result.last_provider or None
        return Alert(
            alert_id=str(uuid.uuid4()),
            kind=kind,
            message=message,
            request_id=request.request_id,
            tenant=request.tenant,
            campaign_id=request.campaign_id,
            alias=run.plan.alias,
            provider=provider,
            details=details,
        )

    def _breaker_changed(self, name: str, state: BreakerState) -> None:
        self.metrics.breaker_state.labels(name).set(BREAKER_STATE_VALUES[state.value.lower()])
        if state is BreakerState.HALF_OPEN:
            return
        # A closing travels as a BREAKER_OPENED alert with details state=closed: a new enum
        # symbol would be unreadable to every Alert reader built before it (no enum default).
        if state is BreakerState.OPEN:
            log.warning("circuit breaker of provider %s opened", name)
        else:
            log.info("circuit breaker of provider %s closed", name)
        went = "opened" if state is BreakerState.OPEN else "closed"
        self._pending_alerts.append(
            Alert(
                alert_id=str(uuid.uuid4()),
                kind=AlertKind.BREAKER_OPENED,
                message=f"circuit breaker of provider {name!r} {went}",
                provider=name,
                details={STATE_DETAIL: state.value},
            )
        )

    def _drain_alerts(self) -> list[Alert]:
        alerts, self._pending_alerts = self._pending_alerts, []
        return alerts


def standalone_router(
    providers: Mapping[str, Provider], *, retry: RetryDefaults | None = None
) -> ModelRouter:
    """A router over ready adapters without a routing file: no budgets, no rate limits,
    default breakers, metrics in a registry of its own.

    For tools and tests that call a pinned model (a judge in a benchmark) outside a worker;
    the stages of a worker share the router built from its routing file instead.
    """
    if not providers:
        raise ValueError("a router needs at least one provider")
    first = next(iter(providers))
    config = RoutingConfig(
        providers={name: ProviderSpec(adapter=OfflineConfig()) for name in providers},
        aliases={"pinned": Alias(chain=[ChainEntry(provider=first, model=first)])},
        default_alias="pinned",
        retry=retry or RetryDefaults(),
    )
    guard = BudgetGuard(config.budgets, MemorySpendBook())
    return ModelRouter(config, providers, guard, ProviderMetrics.build(CollectorRegistry()))


def _attempt(
    entry: ChainEntry,
    code: str | None,
    message: str | None,
    latency_ms: float,
    cost: float,
    usage: Usage,
) -> ProviderAttempt:
    return ProviderAttempt(
        provider=entry.provider,
        model=entry.wire_model,
        code=code,
        message=message,
        latency_ms=round(latency_ms, 3),
        cost=cost,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        images=usage.images,
    )


#: The provider's "too many requests" (HTTP 429).
RATE_LIMITED = "provider.rate_limited"
#: Provider answers that say "no room now", at once: the in-flight limit drops to what the
#: provider still holds.
REFUSED_CODES = frozenset({RATE_LIMITED, "provider.unavailable"})
#: Provider answers that say "too much load" slowly: the in-flight limit halves.
OVERLOAD_CODES = frozenset({"provider.timeout"})
#: Answers that say nothing about load (it was not reached).
UNREACHED_CODES = frozenset({"provider.connect", "provider.unsafe_url"})


def record_verdict(breaker: CircuitBreaker, outcome: Generated | ProviderError) -> None:
    """What one call's (or batch API exchange's) outcome tells the provider's breaker."""
    if isinstance(outcome, Generated) or outcome.refusal:
        breaker.record_success()
    elif outcome.code == RATE_LIMITED:
        # Alive, only busy: the in-flight limit halves and Retry-After is honoured. As a
        # failure, the burst of 429s one overshoot brings opened the breaker and failed
        # every waiting request with breaker.open (tests/integration/test_scheduling.py).
        breaker.record_success()
    elif outcome.retryable or outcome.code == "provider.auth":
        breaker.record_failure()
    else:
        breaker.record_success()  # it answered; the request was the problem


def load_signal(outcome: Generated | ProviderError) -> Signal:
    """What one call's outcome tells the provider's in-flight limit."""
    if isinstance(outcome, Generated):
        return Signal.OK
    if outcome.code in REFUSED_CODES:
        return Signal.REFUSED
    if outcome.code in OVERLOAD_CODES:
        return Signal.OVERLOAD
    if outcome.code in UNREACHED_CODES:
        return Signal.IGNORE
    return Signal.OK  # it answered; the request was the problem


def deadline_after_s(request: GenerationRequest, alias_budget_s: float) -> float:
    """How long after ``created_at`` the request is due: its own ``latency_budget_ms`` when
    set (a campaign submitted with ``--deadline 24h``), else its alias's budget.

    The request's own deadline may exceed the alias's budget: waiting costs no worker slot,
    and each routing run is still bounded by the alias's budget (see :meth:`ModelRouter.route`).
    """
    own = request.latency_budget_ms
    if own is not None and own > 0:
        return own / 1000.0
    return alias_budget_s


def deadline_remaining_s(request: GenerationRequest, deadline_s: float, now_s: float) -> float:
    """Seconds left until ``created_at`` + ``deadline_s`` (negative: how late it is).

    The deadline spans the time the request waited in topics and queues and every attempt: a
    re-generation keeps ``created_at``, so it inherits what is left. A ``created_at`` in the
    future (a producer's clock ahead of ours) counts as now, never as extra time.
    """
    created_s = request.created_at.timestamp()
    return deadline_s - max(0.0, now_s - created_s)
