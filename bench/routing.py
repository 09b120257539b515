"""Benchmark the model router against a real OpenAI-compatible HTTP server on 127.0.0.1.

    python -m bench.routing [--repeats 20] [--requests 1000]

Everything talks HTTP to tests.support.provider_server (aiohttp in a background thread) in
OpenAI's /chat/completions shape; each adapter owns its pooled httpx client, as in the worker.

  overhead   ModelRouter.route() on a one-rung alias vs OpenAIProvider.generate() called
             directly, same adapter instance (same warm client), interleaved in pairs;
             overhead = median of the paired differences (route - generate) per request.
             Also route() over an in-process null provider: the router's own CPU cost.
  failover   primary hangs (server holds the answer 2 s, rung timeout 0.25 s, no retries) or
             refuses connections (closed port), then a healthy secondary; cost = route() on
             that chain minus route() on the secondary alone, paired.
  breaker    failure_threshold=3: fail until it opens, then count what the server receives on
             the dead route during 200 more route() calls, and their time.
  budget     a provider that answers after 3 s; latency_budget_ms in {100, 250, 1000};
             lateness = route() wall time - budget.
Timings are wall clock on a shared machine: judge medians and p99, not single samples.
Prints a table and writes bench/results/routing.json.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import socket
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from agents.inference.prompt import render_prompt
from agents.inference.providers.base import Generated, Provider, ProviderCall, Usage
from agents.inference.providers.openai import OpenAIConfig, OpenAIProvider
from agents.inference.routing.budget import BudgetGuard, MemorySpendBook
from agents.inference.routing.config import (
    Alias,
    BreakerConfig,
    ChainEntry,
    OfflineConfig,
    Price,
    ProviderSpec,
    RetryDefaults,
    RoutingConfig,
)
from agents.inference.routing.metrics import ProviderMetrics
from agents.inference.routing.router import ModelRouter, RouteResult
from schemas.records import AssetKind, Constraints, GenerationRequest, ModelSpec
from streams.circuit_breaker import BreakerState
from tests.support.provider_server import (
    ProviderServer,
    Reply,
    openai_chat_response,
    provider_server,
)

PINNED = "gpt-4o-mini-2024-07-18"
PRICE = Price(input_per_1k=0.15, output_per_1k=0.6)
CHAT = "/chat/completions"
HANG_S = 2.0  # the hung primary's answer delay; 8x its rung timeout
SLOW_S = 3.0  # the budget phase's provider; 3x the largest budget
FAILOVER_TIMEOUT_S = 0.25
BUDGETS_MS = (100, 250, 1000)
BREAKER_THRESHOLD = 3
OPEN_CALLS = 200
MS = 1000.0

# Targets from the issue, in seconds.
OVERHEAD_TARGET_S = 0.001
FAILOVER_SLACK_S = 0.100
REFUSED_TARGET_S = 0.005  # "near zero": a refused connect plus one more rung's bookkeeping
BUDGET_LATENESS_S = 0.100


# --- helpers -------------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (as in bench.line)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


def summary_ms(values: list[float]) -> dict[str, float | int]:
    """Seconds in, milliseconds out."""
    return {
        "n": len(values),
        "p50_ms": round(pct(values, 50) * MS, 3),
        "p99_ms": round(pct(values, 99) * MS, 3),
        "min_ms": round(min(values) * MS, 3) if values else float("nan"),
        "max_ms": round(max(values) * MS, 3) if values else float("nan"),
        "mean_ms": round(statistics.fmean(values) * MS, 3) if values else float("nan"),
    }


def fmt(seconds: float) -> str:
    return f"{seconds * MS:.2f}"


async def timed(fn: Callable[..., Awaitable[Any]], *args: Any) -> tuple[float, Any]:
    start = time.perf_counter()
    value = await fn(*args)
    return time.perf_counter() - start, value


def closed_port() -> int:
    """A port on 127.0.0.1 nobody listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def chat_ok(body: Any) -> Reply:
    return Reply(json=openai_chat_response("Trail shoes that grip.", model=body["model"]))


#: When the last held-back answer is due (monotonic); the server must not stop before it.
_HELD_UNTIL = [0.0]


def held(delay_s: float) -> Callable[[Any], Reply]:
    """An answer held back ``delay_s``; runs in the server's thread."""

    def handler(body: Any) -> Reply:
        _HELD_UNTIL[0] = max(_HELD_UNTIL[0], time.monotonic() + delay_s)
        return Reply(json=openai_chat_response("too late", model=body["model"]), delay_s=delay_s)

    return handler


async def drain_held() -> None:
    """Wait out the answers still held back, so stopping the server destroys no handler."""
    await asyncio.sleep(max(0.0, _HELD_UNTIL[0] - time.monotonic()) + 0.2)


def make_request(alias: str, i: int = 0, budget_ms: int | None = None) -> GenerationRequest:
    rid = f"bench-routing-{alias}-{i:06d}"
    return GenerationRequest(
        request_id=rid,
        idempotency_key=rid,
        tenant="bench",
        campaign_id="routing",
        kind=AssetKind.TEXT,
        prompt_template="Headline for ${persona}",
        variables={"persona": "trail runners", "locale": "en-GB"},
        model=ModelSpec(alias=alias),
        constraints=Constraints(max_chars=280),
        latency_budget_ms=budget_ms,
    )


def rung(provider: str, timeout_s: float) -> ChainEntry:
    return ChainEntry(
        provider=provider,
        model="gpt-4o-mini",
        version=PINNED,
        timeout_s=timeout_s,
        max_retries=0,
        max_output_tokens=256,
        price=PRICE,
    )


def openai_spec(base_url: str, threshold: int = 1_000_000) -> ProviderSpec:
    return ProviderSpec(
        adapter=OpenAIConfig(base_url=base_url),
        breaker=BreakerConfig(failure_threshold=threshold, reset_after_s=3600.0),
    )


def routing(providers: dict[str, ProviderSpec], aliases: dict[str, Alias]) -> RoutingConfig:
    return RoutingConfig(
        providers=providers,
        aliases=aliases,
        default_alias=next(iter(aliases)),
        retry=RetryDefaults(),
    )


def router_for(config: RoutingConfig, adapters: dict[str, Provider]) -> ModelRouter:
    return ModelRouter(
        config,
        adapters,
        BudgetGuard(config.budgets, MemorySpendBook()),
        ProviderMetrics.build(CollectorRegistry()),
    )


def adapters_for(config: RoutingConfig) -> dict[str, OpenAIProvider]:
    """One adapter (and so one pooled httpx client) per provider, as build_adapters does."""
    out = {}
    for name, spec in config.providers.items():
        assert isinstance(spec.adapter, OpenAIConfig)
        out[name] = OpenAIProvider(name, spec.adapter, None)
    return out


async def close_all(adapters: dict[str, OpenAIProvider]) -> None:
    for adapter in adapters.values():
        await adapter.aclose()


def served_by(result: RouteResult, provider: str) -> None:
    if result.generated is None or result.served_by is None:
        error = result.error.message if result.error else "no error"
        raise SystemExit(f"route() did not serve {result.request.request_id}: {error}")
    if result.served_by.provider != provider:
        raise SystemExit(f"served by {result.served_by.provider}, expected {provider}")


def first_codes(results: list[RouteResult]) -> dict[str, int]:
    """How often each code appears on the first attempt (what the first rung did)."""
    counts: dict[str, int] = {}
    for result in results:
        code = str(result.attempts[0].code) if result.attempts else "no attempt"
        counts[code] = counts.get(code, 0) + 1
    return counts


@dataclass
class Row:
    metric: str
    measured: str
    target: str
    ok: bool | None  # None: informational

    def as_dict(self) -> dict[str, object]:
        return {
            "metric": self.metric,
            "measured": self.measured,
            "target": self.target,
            "ok": self.ok,
        }


class NullProvider:
    """Answers at once from memory: what route() costs with no network in the way."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._answer = Generated(
            data=b"Trail shoes that grip.",
            media_type="text/plain",
            provider=name,
            model_version=PINNED,
            usage=Usage(input_tokens=12, output_tokens=34),
        )

    async def generate(self, call: ProviderCall) -> Generated:
        return self._answer


# --- 1. routing overhead -----------------------------------------------------------------


async def paired(
    direct: Callable[[], Awaitable[Any]],
    routed: Callable[[], Awaitable[RouteResult]],
    n: int,
    warmup: int,
    provider: str,
) -> tuple[list[float], list[float]]:
    """``n`` (direct, routed) pairs, alternating which goes first to cancel drift."""
    for _ in range(warmup):
        await direct()
        served_by(await routed(), provider)
    gc.collect()
    direct_s: list[float] = []
    routed_s: list[float] = []
    for i in range(n):
        if i % 2:
            t_r, result = await timed(routed)
            t_d, _ = await timed(direct)
        else:
            t_d, _ = await timed(direct)
            t_r, result = await timed(routed)
        served_by(result, provider)
        direct_s.append(t_d)
        routed_s.append(t_r)
    return direct_s, routed_s


def call_for(request: GenerationRequest, entry: ChainEntry) -> ProviderCall:
    """The ProviderCall the router builds for ``entry`` (prompt rendered once, up front)."""
    return ProviderCall(
        request=request,
        prompt=render_prompt(request),
        model=entry.wire_model,
        timeout_s=entry.timeout_s,
        max_output_tokens=entry.max_output_tokens,
        params=entry.params,
    )


async def phase_overhead(server: ProviderServer, n: int) -> tuple[list[Row], dict[str, Any]]:
    config = routing(
        {"openai": openai_spec(f"{server.url}/v1")}, {"copy": Alias(chain=[rung("openai", 5.0)])}
    )
    adapters = adapters_for(config)
    adapter = adapters["openai"]
    router = router_for(config, dict(adapters))  # the very adapter the direct calls use
    request = make_request("copy")
    call = call_for(request, config.aliases["copy"].chain[0])
    try:
        direct, routed = await paired(
            lambda: adapter.generate(call),
            lambda: router.route(request),
            n,
            max(50, n // 10),
            "openai",
        )
    finally:
        await close_all(adapters)

    null_config = routing(
        {"null": ProviderSpec(adapter=OfflineConfig())}, {"copy": Alias(chain=[rung("null", 5.0)])}
    )
    null = NullProvider("null")
    null_router = router_for(null_config, {"null": null})
    null_call = call_for(request, null_config.aliases["copy"].chain[0])
    null_direct, null_routed = await paired(
        lambda: null.generate(null_call), lambda: null_router.route(request), n, 200, "null"
    )

    diffs = [r - d for r, d in zip(routed, direct, strict=True)]
    null_diffs = [r - d for r, d in zip(null_routed, null_direct, strict=True)]
    overhead = statistics.median(diffs)
    of_medians = statistics.median(routed) - statistics.median(direct)
    rows = [
        Row(
            f"overhead: median of paired (route - generate), n={n}",
            f"{fmt(overhead)} ms",
            "<= 1 ms",
            overhead <= OVERHEAD_TARGET_S,
        ),
        Row("overhead: difference of medians", f"{fmt(of_medians)} ms", "<= 1 ms", None),
        Row(
            "overhead: p99(route) - p99(generate)",
            f"{fmt(pct(routed, 99) - pct(direct, 99))} ms",
            "-",
            None,
        ),
        Row(
            "generate() direct, HTTP: p50 / p99",
            f"{fmt(pct(direct, 50))} / {fmt(pct(direct, 99))} ms",
            "-",
            None,
        ),
        Row(
            "route() one rung, HTTP: p50 / p99",
            f"{fmt(pct(routed, 50))} / {fmt(pct(routed, 99))} ms",
            "-",
            None,
        ),
        Row(
            "router CPU only (null provider): median diff / p99 route",
            f"{fmt(statistics.median(null_diffs))} / {fmt(pct(null_routed, 99))} ms",
            "-",
            None,
        ),
    ]
    details = {
        "requests": n,
        "direct": summary_ms(direct),
        "routed": summary_ms(routed),
        "paired_diff": summary_ms(diffs),
        "overhead_median_paired_ms": round(overhead * MS, 3),
        "overhead_difference_of_medians_ms": round(of_medians * MS, 3),
        "null_provider": {
            "direct": summary_ms(null_direct),
            "routed": summary_ms(null_routed),
            "paired_diff": summary_ms(null_diffs),
        },
    }
    return rows, details


# --- 2. failover cost --------------------------------------------------------------------


async def failover_samples(
    router: ModelRouter, alias: str, reps: int
) -> tuple[list[float], list[float], list[RouteResult]]:
    """``reps`` pairs of (route on ``alias``, route on the secondary alone), alternating."""
    chain_s: list[float] = []
    alone_s: list[float] = []
    results: list[RouteResult] = []
    for i in range(reps):
        chain_request = make_request(alias, i)
        alone_request = make_request("alone", i)
        if i % 2:
            t_alone, alone = await timed(router.route, alone_request)
            t_chain, result = await timed(router.route, chain_request)
        else:
            t_chain, result = await timed(router.route, chain_request)
            t_alone, alone = await timed(router.route, alone_request)
        served_by(result, "healthy")
        served_by(alone, "healthy")
        chain_s.append(t_chain)
        alone_s.append(t_alone)
        results.append(result)
    return chain_s, alone_s, results


async def phase_failover(
    server: ProviderServer, reps: int
) -> tuple[list[Row], dict[str, Any], list[float]]:
    server.handle("POST", f"/hang/v1{CHAT}", held(HANG_S))
    config = routing(
        {
            "healthy": openai_spec(f"{server.url}/v1"),
            "hung": openai_spec(f"{server.url}/hang/v1"),
            "refusing": openai_spec(f"http://127.0.0.1:{closed_port()}/v1"),
        },
        {
            "alone": Alias(chain=[rung("healthy", 5.0)]),
            "after_hang": Alias(chain=[rung("hung", FAILOVER_TIMEOUT_S), rung("healthy", 5.0)]),
            "after_refusal": Alias(
                chain=[rung("refusing", FAILOVER_TIMEOUT_S), rung("healthy", 5.0)]
            ),
        },
    )
    adapters = adapters_for(config)
    router = router_for(config, dict(adapters))
    try:
        for i in range(50):
            served_by(await router.route(make_request("alone", i)), "healthy")
        for i in range(5):  # the refused connect path, once warm
            served_by(await router.route(make_request("after_refusal", i)), "healthy")
        gc.collect()
        hang_chain, hang_alone, hang_results = await failover_samples(router, "after_hang", reps)
        refused_reps = reps * 10
        ref_chain, ref_alone, ref_results = await failover_samples(
            router, "after_refusal", refused_reps
        )
    finally:
        await close_all(adapters)

    hang_cost = [c - a for c, a in zip(hang_chain, hang_alone, strict=True)]
    ref_cost = [c - a for c, a in zip(ref_chain, ref_alone, strict=True)]
    hang_limit = FAILOVER_TIMEOUT_S + FAILOVER_SLACK_S
    rows = [
        Row(
            f"failover, primary hangs (timeout 0.25 s): median / max cost, n={reps}",
            f"{fmt(statistics.median(hang_cost))} / {fmt(max(hang_cost))} ms",
            f"max <= {hang_limit * MS:.0f} ms",
            max(hang_cost) <= hang_limit,
        ),
        Row(
            "  same, cost beyond the 250 ms timeout: median / max",
            f"{fmt(statistics.median(hang_cost) - FAILOVER_TIMEOUT_S)} / "
            f"{fmt(max(hang_cost) - FAILOVER_TIMEOUT_S)} ms",
            f"<= {FAILOVER_SLACK_S * MS:.0f} ms",
            None,
        ),
        Row(
            f"failover, primary refuses connect: median / p99 cost, n={refused_reps}",
            f"{fmt(statistics.median(ref_cost))} / {fmt(pct(ref_cost, 99))} ms",
            f"~0 (median <= {REFUSED_TARGET_S * MS:.0f} ms)",
            statistics.median(ref_cost) <= REFUSED_TARGET_S,
        ),
        Row(
            "secondary alone, route(): p50 / p99",
            f"{fmt(pct(ref_alone + hang_alone, 50))} / {fmt(pct(ref_alone + hang_alone, 99))} ms",
            "-",
            None,
        ),
    ]
    details = {
        "rung_timeout_s": FAILOVER_TIMEOUT_S,
        "hung": {
            "route": summary_ms(hang_chain),
            "secondary_alone": summary_ms(hang_alone),
            "cost_paired": summary_ms(hang_cost),
            "first_attempt_codes": first_codes(hang_results),
        },
        "refused": {
            "route": summary_ms(ref_chain),
            "secondary_alone": summary_ms(ref_alone),
            "cost_paired": summary_ms(ref_cost),
            "first_attempt_codes": first_codes(ref_results),
        },
    }
    return rows, details, hang_chain


# --- 3. open breaker ---------------------------------------------------------------------


async def phase_breaker(
    server: ProviderServer, closed_failing: list[float]
) -> tuple[list[Row], dict[str, Any]]:
    dead_path = f"/breaker/v1{CHAT}"
    server.handle("POST", dead_path, held(HANG_S))
    config = routing(
        {
            "healthy": openai_spec(f"{server.url}/v1"),
            "dead": openai_spec(f"{server.url}/breaker/v1", threshold=BREAKER_THRESHOLD),
        },
        {
            "ladder": Alias(chain=[rung("dead", FAILOVER_TIMEOUT_S), rung("healthy", 5.0)]),
            "alone": Alias(chain=[rung("healthy", 5.0)]),
        },
    )
    adapters = adapters_for(config)
    router = router_for(config, dict(adapters))
    breaker = router.breakers["dead"]
    try:
        for i in range(50):
            served_by(await router.route(make_request("alone", i)), "healthy")
        to_open: list[float] = []
        while breaker.state is not BreakerState.OPEN:
            if len(to_open) >= 10 * BREAKER_THRESHOLD:
                raise SystemExit(f"breaker never opened: {breaker!r}")
            elapsed, result = await timed(router.route, make_request("ladder", len(to_open)))
            served_by(result, "healthy")
            to_open.append(elapsed)
        await asyncio.sleep(0.2)  # let the last cancelled request land on the server
        seen_before = len(server.requests_to(dead_path))
        gc.collect()
        open_s: list[float] = []
        results: list[RouteResult] = []
        for i in range(OPEN_CALLS):
            elapsed, result = await timed(router.route, make_request("ladder", 1000 + i))
            served_by(result, "healthy")
            open_s.append(elapsed)
            results.append(result)
        await asyncio.sleep(0.2)  # anything sent would have arrived by now
        leaked = len(server.requests_to(dead_path)) - seen_before
        state_after = breaker.state
    finally:
        await close_all(adapters)

    rows = [
        Row(
            f"dead-route requests during {OPEN_CALLS} route() with breaker open",
            str(leaked),
            "0",
            # the count is only meaningful if the failing calls before it were seen
            leaked == 0 and state_after is BreakerState.OPEN and seen_before == len(to_open),
        ),
        Row(
            "route() per request, breaker open: p50 / p99",
            f"{fmt(pct(open_s, 50))} / {fmt(pct(open_s, 99))} ms",
            "-",
            None,
        ),
        Row(
            "route() per request, closed + primary hanging: p50 / p99",
            f"{fmt(pct(closed_failing, 50))} / {fmt(pct(closed_failing, 99))} ms",
            "-",
            None,
        ),
    ]
    details = {
        "failure_threshold": BREAKER_THRESHOLD,
        "calls_to_open": len(to_open),
        "calls_to_open_ms": [round(s * MS, 3) for s in to_open],
        "dead_route_requests_before_open_calls": seen_before,
        "dead_route_requests_during_open_calls": leaked,
        "state_after": state_after.value,
        "open": summary_ms(open_s),
        "open_first_attempt_codes": first_codes(results),
        "closed_failing": summary_ms(closed_failing),
    }
    return rows, details


# --- 4. latency-budget kills -------------------------------------------------------------


async def phase_budget(server: ProviderServer, reps: int) -> tuple[list[Row], dict[str, Any]]:
    server.handle("POST", f"/slow/v1{CHAT}", held(SLOW_S))
    config = routing(
        {"slow": openai_spec(f"{server.url}/slow/v1")},
        {"slow": Alias(chain=[rung("slow", 60.0)])},
    )
    adapters = adapters_for(config)
    router = router_for(config, dict(adapters))
    late: dict[int, list[float]] = {b: [] for b in BUDGETS_MS}
    codes: dict[int, dict[str, int]] = {b: {} for b in BUDGETS_MS}
    try:
        gc.collect()
        for i in range(reps):
            for budget in BUDGETS_MS:  # interleaved, so noise spreads over all three
                request = make_request("slow", i, budget_ms=budget)
                elapsed, result = await timed(router.route, request)
                if result.generated is not None:
                    raise SystemExit("the slow provider answered within the budget?")
                late[budget].append(elapsed - budget / MS)
                code = result.error.code if result.error else "none"
                codes[budget][code] = codes[budget].get(code, 0) + 1
    finally:
        await close_all(adapters)

    rows = [
        Row(
            f"budget {budget} ms kill lateness: median / max, n={reps}",
            f"{fmt(statistics.median(late[budget]))} / {fmt(max(late[budget]))} ms",
            f"max <= {BUDGET_LATENESS_S * MS:.0f} ms",
            max(late[budget]) <= BUDGET_LATENESS_S,
        )
        for budget in BUDGETS_MS
    ]
    details = {
        str(budget): {"lateness": summary_ms(late[budget]), "error_codes": codes[budget]}
        for budget in BUDGETS_MS
    }
    return rows, details


# --- main --------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    cols = ["metric", "measured", "target", "ok?"]
    cells = [
        [r.metric, r.measured, r.target, "-" if r.ok is None else ("yes" if r.ok else "NO")]
        for r in rows
    ]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    phases: dict[str, Any] = {}
    rows: list[Row] = []
    seconds: dict[str, float] = {}
    with provider_server() as server:
        server.handle("POST", f"/v1{CHAT}", chat_ok)
        start = time.perf_counter()
        got, phases["overhead"] = await phase_overhead(server, args.requests)
        rows += got
        seconds["overhead"] = time.perf_counter() - start
        start = time.perf_counter()
        got, phases["failover"], closed_failing = await phase_failover(server, args.repeats)
        rows += got
        seconds["failover"] = time.perf_counter() - start
        start = time.perf_counter()
        got, phases["breaker"] = await phase_breaker(server, closed_failing)
        rows += got
        seconds["breaker"] = time.perf_counter() - start
        start = time.perf_counter()
        got, phases["budget"] = await phase_budget(server, args.budget_repeats or args.repeats)
        rows += got
        seconds["budget"] = time.perf_counter() - start
        await drain_held()
    return {
        "rows": [r.as_dict() for r in rows],
        "phases": phases,
        "phase_seconds": {k: round(v, 2) for k, v in seconds.items()},
        "args": {k: v for k, v in vars(args).items() if k != "json"},
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "_table": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--repeats", type=int, default=20, help="samples per failover case (x10 when refused)"
    )
    parser.add_argument(
        "--budget-repeats", type=int, default=10, help="samples per budget (0: --repeats)"
    )
    parser.add_argument("--requests", type=int, default=1000, help="pairs for the overhead")
    parser.add_argument("--json", type=Path, default=Path("bench/results/routing.json"))
    args = parser.parse_args()
    if min(args.repeats, args.requests) < 1 or args.budget_repeats < 0:
        parser.error("--repeats and --requests must be >= 1, --budget-repeats >= 0")
    started = time.perf_counter()
    result = asyncio.run(main_async(args))
    result["total_seconds"] = round(time.perf_counter() - started, 2)
    print_table(result.pop("_table"))
    breaker = result["phases"]["breaker"]
    print(
        f"\nbreaker: opened after {breaker['calls_to_open']} failing calls (server saw "
        f"{breaker['dead_route_requests_before_open_calls']}); dead route got "
        f"{breaker['dead_route_requests_during_open_calls']} requests in the next {OPEN_CALLS}"
    )
    budget_codes = {b: d["error_codes"] for b, d in result["phases"]["budget"].items()}
    print(f"budget kills, final error codes: {budget_codes}")
    print(f"phase seconds: {result['phase_seconds']}, total {result['total_seconds']} s")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
