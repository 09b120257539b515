"""The router's decisions: retry, back off, fail over, stop, and the budgets around them."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agents.inference.providers.base import Attachment, ProviderError, Usage
from agents.inference.routing.budget import BudgetGuard, MemorySpendBook
from agents.inference.routing.config import (
    Alias,
    BreakerConfig,
    Budgets,
    ChainEntry,
    Fallback,
    OfflineConfig,
    Price,
    ProviderSpec,
    RateLimit,
    RetryDefaults,
    RoutingConfig,
)
from agents.inference.routing.metrics import ProviderMetrics
from agents.inference.routing.router import ModelRouter, RouteResult
from schemas.records import AlertKind, AssetKind, GenerationRequest, ModelSpec
from tests.support.scripted_provider import ScriptedProvider, Slow, served

PAID = Price(input_per_1k=1.0, output_per_1k=2.0)


def entry(provider: str, **kw: Any) -> ChainEntry:
    return ChainEntry(provider=provider, model=f"{provider}-model", **kw)


def config(
    chain: list[ChainEntry],
    *,
    fallback: Fallback | None = None,
    budget_ms: int = 10_000,
    budgets: Budgets | None = None,
    breaker: BreakerConfig | None = None,
    rate_limit: RateLimit | None = None,
    backoff_base_s: float = 0.5,
) -> RoutingConfig:
    names = {e.provider for e in chain}
    providers = {
        n: ProviderSpec(
            adapter=OfflineConfig(), breaker=breaker or BreakerConfig(), rate_limit=rate_limit
        )
        for n in names
    }
    return RoutingConfig(
        providers=providers,
        aliases={"a": Alias(chain=chain, latency_budget_ms=budget_ms, fallback=fallback)},
        default_alias="a",
        budgets=budgets or Budgets(),
        retry=RetryDefaults(base_s=backoff_base_s, cap_s=4.0, max_retry_after_s=30.0),
    )


class Harness:
    def __init__(self, cfg: RoutingConfig, *providers: Any) -> None:
        self.registry = CollectorRegistry()
        self.book = MemorySpendBook()
        self.slept: list[float] = []
        self.now = 1000.0
        self.router = ModelRouter(
            cfg,
            {p.name: p for p in providers},
            BudgetGuard(cfg.budgets, self.book),
            ProviderMetrics.build(self.registry),
            rng=random.Random(7),
            clock=self.clock,
            sleep=self.sleep,
        )

    def clock(self) -> float:
        return self.now + time.monotonic()

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)  # backoff is recorded, not waited: these tests never idle

    def route(self, req: GenerationRequest | None = None) -> RouteResult:
        return asyncio.run(self.router.route(req or request()))

    def metric(self, name: str, **labels: str) -> float:
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value


def request(**kw: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "request_id": "r-1",
        "idempotency_key": "k-1",
        "tenant": "acme",
        "campaign_id": "spring",
        "kind": AssetKind.TEXT,
        "prompt_template": "Hello ${name}",
        "variables": {"name": "Ada"},
    }
    fields.update(kw)
    return GenerationRequest(**fields)


def err(code: str = "provider.unavailable", **kw: Any) -> ProviderError:
    kw.setdefault("retryable", code in ("provider.unavailable", "provider.rate_limited"))
    return ProviderError(code, f"{code} happened", **kw)


def codes(result: RouteResult) -> list[str | None]:
    return [a.code for a in result.attempts]


# --- failover and retries ---------------------------------------------------------------------


def test_primary_500s_are_retried_then_the_secondary_serves() -> None:
    primary = ScriptedProvider("primary", [err()])
    secondary = ScriptedProvider("secondary")
    h = Harness(config([entry("primary", max_retries=2), entry("secondary")]), primary, secondary)
    result = h.route()
    assert result.generated is not None
    assert result.served_by is not None
    assert result.served_by.provider == "secondary"
    assert codes(result) == ["provider.unavailable"] * 3 + [None]
    assert [a.provider for a in result.attempts] == ["primary"] * 3 + ["secondary"]
    assert len(h.slept) == 2
    assert 0 <= h.slept[0] <= 0.5
    assert 0 <= h.slept[1] <= 1.0
    assert result.error is None
    assert primary.calls[0].prompt == "Hello Ada"
    assert primary.calls[0].model == "primary-model"
    assert (
        h.metric(
            "assetline_provider_requests_total",
            provider="primary",
            model="primary-model",
            outcome="error",
        )
        == 3
    )
    assert (
        h.metric(
            "assetline_provider_requests_total",
            provider="secondary",
            model="secondary-model",
            outcome="ok",
        )
        == 1
    )


def test_the_pinned_version_is_what_goes_on_the_wire() -> None:
    provider = ScriptedProvider("p")
    h = Harness(config([entry("p", version="p-2024-07-18")]), provider)
    h.route()
    assert provider.calls[0].model == "p-2024-07-18"


def test_a_refusal_is_final_and_never_routed_around() -> None:
    primary = ScriptedProvider("primary", [err("provider.refused", refusal=True)])
    secondary = ScriptedProvider("secondary")
    cfg = config([entry("primary"), entry("secondary")], fallback=Fallback(text="x"))
    result = Harness(cfg, primary, secondary).route()
    assert result.generated is None
    assert result.error is not None
    assert result.error.refusal
    assert result.error.code == "provider.refused"
    assert secondary.calls == []
    assert len(primary.calls) == 1
    assert not result.fallback_allowed


def test_non_retryable_errors_fail_over_without_retrying() -> None:
    primary = ScriptedProvider("primary", [err("provider.auth")])
    secondary = ScriptedProvider("secondary")
    h = Harness(config([entry("primary", max_retries=3), entry("secondary")]), primary, secondary)
    result = h.route()
    assert codes(result) == ["provider.auth", None]
    assert h.slept == []


def test_retry_after_is_honoured() -> None:
    primary = ScriptedProvider(
        "primary", [err("provider.rate_limited", retry_after_s=2.5), served("primary")]
    )
    h = Harness(config([entry("primary", max_retries=1)]), primary)
    result = h.route()
    assert codes(result) == ["provider.rate_limited", None]
    assert h.slept[0] >= 2.5


def test_a_retry_after_beyond_the_budget_fails_over_instead_of_sleeping() -> None:
    primary = ScriptedProvider("primary", [err("provider.rate_limited", retry_after_s=25)])
    secondary = ScriptedProvider("secondary")
    cfg = config([entry("primary", max_retries=3), entry("secondary")], budget_ms=5_000)
    h = Harness(cfg, primary, secondary)
    result = h.route()
    assert codes(result) == ["provider.rate_limited", None]
    assert h.slept == []


def test_every_rung_failing_reports_each_attempt_and_allows_the_fallback() -> None:
    a = ScriptedProvider("a", [err()])
    b = ScriptedProvider("b", [err("provider.bad_response", retryable=True)])
    cfg = config(
        [entry("a", max_retries=0), entry("b", max_retries=0)], fallback=Fallback(placeholder=True)
    )
    result = Harness(cfg, a, b).route()
    assert result.generated is None
    assert result.fallback_allowed
    assert result.error is not None
    assert result.error.code == "provider.bad_response"
    assert "a/a-model: provider.unavailable" in result.error.message
    assert [x.kind for x in result.alerts] == [AlertKind.ALL_PROVIDERS_FAILED]


def test_an_unknown_alias_is_an_error_not_an_exception() -> None:
    h = Harness(config([entry("a")]), ScriptedProvider("a"))
    result = h.route(request(model=ModelSpec(alias="nope")))
    assert result.error is not None
    assert result.error.code == "routing.unknown_alias"
    assert result.attempts == []


def test_an_adapter_that_crashes_is_a_failed_attempt() -> None:
    class Broken:
        name = "broken"

        async def generate(self, call: Any) -> Any:
            raise KeyError("choices")

    cfg = config([entry("broken"), entry("secondary")])
    result = Harness(cfg, Broken(), ScriptedProvider("secondary")).route()
    assert codes(result) == ["provider.crashed", None]


# --- circuit breaker ------------------------------------------------------------------------


def test_an_open_breaker_sends_nothing_to_the_dead_provider_then_probes() -> None:
    dead = ScriptedProvider("dead", [err()])
    backup = ScriptedProvider("backup")
    cfg = config(
        [entry("dead", max_retries=0), entry("backup")],
        breaker=BreakerConfig(failure_threshold=2, reset_after_s=30),
    )
    h = Harness(cfg, dead, backup)
    h.route()
    h.route()
    assert len(dead.calls) == 2
    assert h.metric("assetline_provider_breaker_state", provider="dead") == 2
    third = h.route()
    assert len(dead.calls) == 2, "an open breaker must not let a call through"
    assert codes(third) == ["breaker.open", None]
    still_open = h.route()
    assert AlertKind.BREAKER_OPENED not in [a.kind for a in still_open.alerts]  # one per opening
    h.now += 31  # past reset_after_s: one half-open probe
    dead.script = [served("dead")]
    probe = h.route()
    assert len(dead.calls) == 3
    assert codes(probe) == [None]
    assert h.metric("assetline_provider_breaker_state", provider="dead") == 0


def test_breaker_opening_raises_one_alert() -> None:
    dead = ScriptedProvider("dead", [err()])
    cfg = config([entry("dead", max_retries=0)], breaker=BreakerConfig(failure_threshold=1))
    h = Harness(cfg, dead)
    kinds = [a.kind for a in h.route().alerts]
    assert kinds.count(AlertKind.BREAKER_OPENED) == 1
    assert AlertKind.BREAKER_OPENED not in [a.kind for a in h.route().alerts]


# --- latency budget -------------------------------------------------------------------------


def test_the_latency_budget_cancels_the_call_in_flight() -> None:
    slow = ScriptedProvider("slow", [Slow(30.0)])
    h = Harness(config([entry("slow")], budget_ms=200, fallback=Fallback(text="x")), slow)
    started = time.perf_counter()
    result = h.route()
    elapsed = time.perf_counter() - started
    assert 0.2 <= elapsed < 0.2 + 0.5  # tolerance for a loaded 2-core CI box; bench measures it
    assert slow.cancelled == 1
    assert result.error is not None
    assert result.error.code == "budget_exceeded"
    assert not result.fallback_allowed
    assert codes(result) == ["budget_exceeded"]
    alert = result.alerts[-1]
    assert alert.kind is AlertKind.LATENCY_BUDGET_EXCEEDED
    assert alert.details["budget_ms"] == "200"
    assert h.metric("assetline_budget_kills_total", alias="a", kind="latency") == 1


def test_the_request_budget_bounds_retries_too() -> None:
    flaky = ScriptedProvider("flaky", [Slow(0.15, err())])
    cfg = config([entry("flaky", max_retries=10)], budget_ms=10_000, backoff_base_s=0.0)
    h = Harness(cfg, flaky)
    result = h.route(request(latency_budget_ms=400))
    assert result.error is not None
    assert result.error.code == "budget_exceeded"
    assert len(flaky.calls) == 3  # killed during the third 150 ms call
    assert flaky.cancelled == 1


def test_a_request_cannot_raise_the_alias_budget() -> None:
    """Before: ``latency_budget_ms=2**31-1`` held the call for up to 24.8 days."""
    slow = ScriptedProvider("slow", [Slow(30.0)])
    h = Harness(config([entry("slow")], budget_ms=200), slow)
    started = time.perf_counter()
    result = h.route(request(latency_budget_ms=2**31 - 1))
    assert time.perf_counter() - started < 0.2 + 0.5
    assert result.error is not None
    assert result.error.code == "budget_exceeded"
    assert result.alerts[-1].details["budget_ms"] == "200"


def test_a_per_call_timeout_is_a_retryable_failure() -> None:
    slow = ScriptedProvider("slow", [Slow(5.0)])
    fast = ScriptedProvider("fast")
    cfg = config([entry("slow", timeout_s=0.05, max_retries=0), entry("fast")])
    result = Harness(cfg, slow, fast).route()
    assert codes(result) == ["provider.timeout", None]


# --- cost -----------------------------------------------------------------------------------


def test_cost_sums_every_attempt_at_each_units_rate() -> None:
    billed = Usage(input_tokens=1000, output_tokens=500)
    primary = ScriptedProvider("primary", [err(usage=billed)])
    secondary = ScriptedProvider("secondary", [served("secondary", Usage(images=2))])
    cfg = config(
        [
            entry("primary", max_retries=0, price=PAID),
            entry("secondary", price=Price(per_image=0.04, output_per_1k=99.0)),
        ]
    )
    h = Harness(cfg, primary, secondary)
    result = h.route()
    assert result.cost == pytest.approx(1.0 + 1.0 + 0.08)
    assert [a.cost for a in result.attempts] == pytest.approx([2.0, 0.08])
    assert h.book.spent("campaign:spring") == pytest.approx(2.08)
    assert h.metric(
        "assetline_provider_cost_usd_total", provider="primary", model="primary-model"
    ) == pytest.approx(2.0)


def test_a_call_that_would_exceed_the_budget_is_never_sent() -> None:
    paid = ScriptedProvider("paid")
    cfg = config(
        [entry("paid", price=PAID, max_output_tokens=1000)],
        budgets=Budgets(campaigns={"spring": 1.0}),
        fallback=Fallback(text="x"),
    )
    h = Harness(cfg, paid)
    result = h.route()
    assert paid.calls == []
    assert result.error is not None
    assert result.error.code == "cost_budget_exceeded"
    assert not result.fallback_allowed
    assert codes(result) == ["cost_budget_exceeded"]
    assert AlertKind.COST_BUDGET_EXCEEDED in [a.kind for a in result.alerts]
    assert h.metric("assetline_budget_kills_total", alias="a", kind="cost") == 1


def test_failover_rechecks_the_budget_so_a_free_primary_cannot_leak_paid_spend() -> None:
    free = ScriptedProvider("free", [err()])
    paid = ScriptedProvider("paid")
    cfg = config(
        [entry("free", max_retries=0), entry("paid", price=PAID, max_output_tokens=1000)],
        budgets=Budgets(tenants={"acme": 0.5}),
    )
    h = Harness(cfg, free, paid)
    result = h.route()
    assert len(free.calls) == 1
    assert paid.calls == []
    assert codes(result) == ["provider.unavailable", "cost_budget_exceeded"]
    assert result.error is not None
    assert result.error.code == "cost_budget_exceeded"


def test_spend_accumulates_until_the_ceiling_stops_requests() -> None:
    paid = ScriptedProvider("paid", [served("paid", Usage(input_tokens=100, output_tokens=400))])
    cfg = config(
        [entry("paid", price=PAID, max_output_tokens=400, estimated_input_tokens=100)],
        budgets=Budgets(campaigns={"spring": 3.0}),
    )
    h = Harness(cfg, paid)
    outcomes = [h.route().error for _ in range(5)]
    # each call costs 0.1 + 0.8 = 0.9: three fit under 3.0, the fourth would not
    assert [e is None for e in outcomes] == [True, True, True, False, False]
    assert h.book.spent("campaign:spring") == pytest.approx(2.7)


# --- rate limit -----------------------------------------------------------------------------


def test_a_rate_limit_wait_longer_than_the_budget_fails_over() -> None:
    limited = ScriptedProvider("limited")
    other = ScriptedProvider("other")
    cfg = config(
        [entry("limited"), entry("other")],
        budget_ms=1_000,
        rate_limit=RateLimit(per_second=0.01, burst=1),
    )
    h = Harness(cfg, limited, other)
    assert codes(h.route()) == [None]
    second = h.route()
    assert codes(second) == ["ratelimit.wait_exceeds_budget", None]
    assert len(limited.calls) == 1


def test_the_group_splits_each_rate_limit_between_its_live_workers() -> None:
    limited = ScriptedProvider("limited")
    cfg = config([entry("limited")], rate_limit=RateLimit(per_second=6.0, burst=6))
    h = Harness(cfg, limited)
    assert h.metric("assetline_group_members") == 1
    assert h.metric("assetline_provider_rate_limit_per_second", provider="limited") == 6.0
    h.router.set_group_size(3)
    assert h.router.buckets["limited"].rate_per_s == pytest.approx(2.0)
    assert h.router.buckets["limited"].burst == 2
    assert h.metric("assetline_group_members") == 3
    assert h.metric("assetline_provider_rate_limit_per_second", provider="limited") == 2.0
    h.router.set_group_size(0)  # never below one worker's whole limit
    assert h.router.buckets["limited"].rate_per_s == pytest.approx(6.0)


def test_a_peer_opened_breaker_fails_over_at_once_without_a_second_alert() -> None:
    primary, backup = ScriptedProvider("primary"), ScriptedProvider("backup")
    h = Harness(config([entry("primary"), entry("backup")]), primary, backup)
    assert h.router.peer_breaker_opened("primary")
    assert not h.router.peer_breaker_opened("primary")  # already open
    assert not h.router.peer_breaker_opened("unknown")
    assert h.metric("assetline_provider_breaker_state", provider="primary") == 2
    result = h.route()
    assert codes(result) == ["breaker.open", None]
    assert primary.calls == []
    assert not [a for a in result.alerts if a.kind is AlertKind.BREAKER_OPENED]


def test_a_good_probe_publishes_the_closing_as_a_breaker_alert_with_state_closed() -> None:
    """Issue 15: the closing is shared like the opening (same kind: an older Alert reader
    could not read a new enum symbol)."""
    dead = ScriptedProvider("dead", [err()])
    cfg = config(
        [entry("dead", max_retries=0)],
        breaker=BreakerConfig(failure_threshold=1, reset_after_s=30),
    )
    h = Harness(cfg, dead)
    (opened,) = [a for a in h.route().alerts if a.kind is AlertKind.BREAKER_OPENED]
    assert opened.details == {"state": "open"}
    assert opened.provider == "dead"
    h.now += 31
    dead.script = [served("dead")]
    (closed,) = [a for a in h.route().alerts if a.kind is AlertKind.BREAKER_OPENED]
    assert closed.details == {"state": "closed"}
    assert closed.provider == "dead"
    assert closed.message == "circuit breaker of provider 'dead' closed"
    assert closed.alert_id != opened.alert_id


def test_a_peer_closing_closes_only_a_breaker_a_peer_opened() -> None:
    primary, dead = ScriptedProvider("primary"), ScriptedProvider("dead", [err()])
    cfg = config(
        [entry("dead", max_retries=0), entry("primary")],
        breaker=BreakerConfig(failure_threshold=1, reset_after_s=30),
    )
    h = Harness(cfg, dead, primary)
    assert h.router.peer_breaker_opened("primary")
    assert h.router.peer_breaker_closed("primary")
    assert not h.router.peer_breaker_closed("primary")  # closed already
    assert not h.router.peer_breaker_closed("unknown")
    assert h.metric("assetline_provider_breaker_state", provider="primary") == 0
    result = h.route()  # dead fails (its breaker opens on its own failure), primary serves
    assert codes(result) == ["provider.unavailable", None]
    assert len(primary.calls) == 1
    assert not [a for a in result.alerts if a.details.get("state") == "closed"]  # no echo
    assert not h.router.peer_breaker_closed("dead")  # opened by its own failure: it probes
    assert h.metric("assetline_provider_breaker_state", provider="dead") == 2


# --- a pinned call (the AI judge) -------------------------------------------------------------


def pinned(h: Harness, rung: ChainEntry, **kw: Any) -> RouteResult:
    kw.setdefault("latency_budget_s", 5.0)
    kw.setdefault("lane", "judge")
    return asyncio.run(h.router.call_pinned(request(), "Judge this.", rung, **kw))


def test_a_pinned_call_is_retried_sent_with_its_attachments_and_booked_in_its_lane() -> None:
    writer = ScriptedProvider("writer")
    judge = ScriptedProvider("judge", [err(), served("judge", Usage(1000, 500))])
    cfg = config([entry("writer"), entry("judge")], backoff_base_s=0.01)
    h = Harness(cfg, writer, judge)
    image = Attachment(b"\x89PNG", "image/png")
    rung = entry("judge", timeout_s=3.0, max_output_tokens=400, price=PAID)
    result = pinned(h, rung, attachments=(image,))

    assert result.generated is not None
    assert result.alias is None
    assert codes(result) == ["provider.unavailable", None]
    assert len(h.slept) == 1  # backed off once
    assert writer.calls == []  # a pinned call never fails over to the alias's chain
    call = judge.calls[-1]
    assert (call.prompt, call.attachments, call.max_output_tokens) == ("Judge this.", (image,), 400)
    assert call.timeout_s <= 3.0
    assert result.cost == pytest.approx(1.0 + 1.0)
    assert h.book.lanes["campaign:spring", "judge"] == pytest.approx(2.0)
    assert h.book.lanes["tenant:acme", "judge"] == pytest.approx(2.0)
    assert h.book.lanes["campaign:spring", ""] == 0.0
    assert h.metric("assetline_provider_cost_usd_total", provider="judge", model="judge-model") == 2


def test_a_pinned_call_is_refused_by_a_budget_spent_by_generation() -> None:
    writer = ScriptedProvider("writer", [served("writer", Usage(1000, 0))])
    judge = ScriptedProvider("judge")
    budgets = Budgets(campaigns={"spring": 1.0})
    # the judge is a provider of the routing file; generation is served by the writer
    rungs = [entry("writer", price=PAID, max_output_tokens=1), entry("judge")]
    h = Harness(config(rungs, budgets=budgets), writer, judge)
    assert h.route().generated is not None  # $1.00: the ceiling is reached
    result = pinned(h, entry("judge", price=PAID))
    assert result.generated is None
    assert result.error is not None
    assert result.error.code == "cost_budget_exceeded"
    assert judge.calls == []
    assert AlertKind.COST_BUDGET_EXCEEDED in [a.kind for a in result.alerts]


def test_a_pinned_call_to_an_unknown_provider_is_a_programming_error() -> None:
    h = Harness(config([entry("writer")]), ScriptedProvider("writer"))
    with pytest.raises(ValueError, match="no adapter built for provider 'judge'"):
        pinned(h, entry("judge"))


# --- deadlines and in-flight limits -------------------------------------------------------------


def test_a_request_past_its_deadline_fails_unsent_with_deadline_exceeded() -> None:
    """created_at + latency budget: time spent queued counts; nothing is sent or spent."""
    from datetime import UTC, datetime, timedelta

    paid = ScriptedProvider("paid")
    h = Harness(
        config([entry("paid", price=PAID)], budget_ms=5_000, fallback=Fallback(text="x")), paid
    )
    old = datetime.now(UTC) - timedelta(seconds=6)
    result = h.route(request(created_at=old))
    assert paid.calls == []
    assert result.error is not None
    assert result.error.code == "deadline_exceeded"
    assert "before any call" in result.error.message
    assert not result.fallback_allowed
    assert result.cost == 0
    assert h.metric("assetline_budget_kills_total", alias="a", kind="deadline") == 1


def test_a_re_generation_inherits_what_is_left_of_the_deadline() -> None:
    from datetime import UTC, datetime, timedelta

    slow = ScriptedProvider("slow", [Slow(30.0)])
    h = Harness(config([entry("slow")], budget_ms=10_000), slow)
    # 9.7 s of the 10 s are gone: the call is cancelled after about 0.3 s, not 10 s.
    started = time.perf_counter()
    result = h.route(request(attempt=2, created_at=datetime.now(UTC) - timedelta(seconds=9.7)))
    assert time.perf_counter() - started < 3.0
    assert result.error is not None
    assert result.error.code == "budget_exceeded"
    assert slow.cancelled == 1


def test_a_request_waiting_for_a_slot_past_its_deadline_is_never_sent() -> None:
    """The provider's in-flight limit is full; the waiting request's deadline passes."""
    from datetime import UTC, datetime, timedelta

    slow = ScriptedProvider("slow", [Slow(30.0)])
    cfg = config([entry("slow")], budget_ms=300)
    cfg = cfg.model_copy(
        update={
            "providers": {"slow": cfg.providers["slow"].model_copy(update={"max_in_flight": 1})}
        }
    )
    h = Harness(cfg, slow)

    async def go() -> tuple[RouteResult, RouteResult]:
        first = asyncio.ensure_future(h.router.route(request(request_id="r-1")))
        await asyncio.sleep(0.05)
        # Its deadline passes at about 0.15 s, while the first holds the slot until 0.3 s.
        created = datetime.now(UTC) - timedelta(seconds=0.2)
        second = await h.router.route(request(request_id="r-2", created_at=created))
        return await first, second

    first, second = asyncio.run(go())
    assert len(slow.calls) == 1  # the second never reached the provider
    assert first.error is not None
    assert first.error.code == "budget_exceeded"
    assert second.error is not None
    assert second.error.code == "deadline_exceeded"
    assert second.attempts == []
    assert h.router.limits["slow"].in_flight == 0


def test_429s_shrink_the_providers_in_flight_limit() -> None:
    limited = ScriptedProvider("p", [err("provider.rate_limited")] * 3 + [served("p")])
    h = Harness(config([entry("p", max_retries=3)]), limited)
    before = h.router.limits["p"].limit
    result = h.route()
    assert result.generated is not None
    assert h.router.limits["p"].limit < before
    assert (
        h.metric("assetline_provider_in_flight_limit", provider="p") == h.router.limits["p"].limit
    )


def test_a_requests_own_deadline_may_exceed_the_alias_budget_but_each_run_may_not() -> None:
    """--deadline 24h: queueing counts against the request's own deadline; the alias's budget
    still bounds each routing run (and a request without a deadline gets the alias's)."""
    from datetime import UTC, datetime, timedelta

    ten_s_ago = datetime.now(UTC) - timedelta(seconds=10)
    ok = ScriptedProvider("ok")
    h = Harness(config([entry("ok")], budget_ms=1_000), ok)
    served_late = h.route(request(created_at=ten_s_ago, latency_budget_ms=60_000))
    assert served_late.generated is not None
    failed = h.route(request(created_at=ten_s_ago))
    assert failed.error is not None
    assert failed.error.code == "deadline_exceeded"
    assert len(ok.calls) == 1

    slow = ScriptedProvider("slow", [Slow(30.0)])
    h = Harness(config([entry("slow")], budget_ms=300), slow)
    started = time.perf_counter()
    result = h.route(request(latency_budget_ms=86_400_000))
    assert time.perf_counter() - started < 3.0  # the run stopped at the alias's 0.3 s
    assert result.error is not None
    assert result.error.code == "budget_exceeded"
