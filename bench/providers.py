"""Slow providers at full speed (issue 16): one worker, default settings, a 2 s provider.

    python -m bench.providers [--quick] [--scenarios throughput,priority,fairness,delivery]
                              [--n 3000] [--max-seconds S] [--json PATH]

A local OpenAI-shaped server in its own process (bench/slow_provider.py) answers each chat call
after uniform(1, 3) s (2 s on average) and answers HTTP 429 (``Retry-After: 1``) to calls beyond
256 in flight: it can answer 256 / 2 s = 128 calls a second. Every phase runs one worker
(``assetline worker``, default settings) on fresh topics of a real broker (``KAFKA_BOOTSTRAP``,
else a local KRaft broker this bench starts), warmed up with a few copy requests first; its
routing file points the ``copy`` alias at the server with nothing tuned (rung defaults: 60 s
timeout, 2 retries; breaker defaults). Times are the completions' ``completed_at`` minus the
requests' ``created_at`` (stamped when submitted; one machine clock).

Scenarios (one table row each):

  throughput  N copy requests (3,000) against the server, and the same N on the same worker
              settings with the offline provider (no routing file), in the same run:
              assets/s, the ratio to min(server capacity 128/s, offline assets/s) (target
              >= 0.8), requests that completed FAILED on a 429, 429s the server sent, the most
              calls it had in flight;
  priority    10,000 NORMAL copy requests submitted, then at once 20 HIGH ones: p50/p99
              request->completion of the HIGH ones (target p99 <= 4 s, the slowest answer,
              + 1 s). The HIGH records sit behind the 10,000 in Kafka, where no priority
              applies, so this is the worst case: the worker must take the whole backlog in
              before it sees them. Skipped while GenerationRequest has no ``priority`` field;
  priority-waiting  the same, but the 20 HIGH are submitted ``--settle`` seconds (10) after the
              10,000, while most of them wait in the worker: the common case of a hero asset
              sent while a campaign runs (the row says how many NORMAL were still waiting);
  fairness    tenant ``a`` submits 10,000, then at once tenant ``b`` 100: b's median
              request->completion beside b's alone on a fresh line (target <= 2x); b's
              records sit behind a's 10,000 in Kafka, so this is the worst case, as for
              priority;
  fairness-waiting  the same, but b submits ``--settle`` seconds (10) after a, while a's
              requests wait in the worker: another tenant's work arriving during a campaign;
  delivery    offline provider; tenant ``files`` delivers to the filesystem, tenant ``dam`` to
              an HTTP destination answering each PUT after 1 s: ``files``'s assets/s when its
              N requests are submitted with ``dam``'s (interleaved), beside the same mix with
              ``dam`` delivering to a folder (same work, a fast destination) (target: not
              slower; reported as the ratio, target >= 0.8 to allow for noise).

For priority and fairness the alias's latency budget is 1 h, so once deadlines run from
``created_at`` the 10,000 queued requests do not fail ``deadline_exceeded`` (which would empty
the queue by failing, not by scheduling). Each phase waits at most ``--max-seconds`` (300;
120 with --quick) for its completions: a row that hit the cap says so and its figures are
lower bounds. ``--n`` sets the throughput scenario's request count; the others scale with it.

Prints a table and writes JSON (bench/results/providers.json, or providers-quick.json with
--quick); scenarios run separately are merged into the file, each with its command and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from assetline.client import LineClient, await_completions, open_completion_reader
from assetline.dev.broker import LocalBroker, free_ports
from assetline.dev.child_worker import WorkerProcess
from bench.slow_provider import SlowServer
from schemas.records import AssetCompleted, AssetKind, Constraints, GenerationRequest, utc_now
from streams.kafka import read_to_end
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs

SCENARIOS = (
    "throughput",
    "priority",
    "priority-waiting",
    "fairness",
    "fairness-waiting",
    "delivery",
)
LONG_BUDGET_MS = 3_600_000


@dataclass(frozen=True)
class Profile:
    throughput_n: int = 3000
    queued_n: int = 10_000
    high_n: int = 20
    settle_s: float = 10.0  # the -waiting rows: HIGH (or b) submitted this long after the backlog
    tenant_b_n: int = 100
    delivery_n: int = 2000  # the filesystem tenant's (400 took 3 s a run: mostly start-up)
    slow_dest_n: int = 100  # the slow DAM tenant's
    max_s: float = 300.0

    def scaled(self, n: int) -> Profile:
        factor = n / self.throughput_n
        return replace(
            self,
            throughput_n=n,
            queued_n=max(1, round(self.queued_n * factor)),
            tenant_b_n=max(1, round(self.tenant_b_n * factor)),
            delivery_n=max(1, round(self.delivery_n * factor)),
            slow_dest_n=max(1, round(self.slow_dest_n * factor)),
        )


FULL = Profile()
QUICK = Profile(throughput_n=300, queued_n=1000, high_n=20, tenant_b_n=50, delivery_n=200,
                slow_dest_n=50, max_s=120.0)  # fmt: skip


# ---------------------------------------------------------------- requests and settings


def has_priority() -> bool:
    """True once GenerationRequest carries ``priority`` (issue 16 part 2)."""
    return "priority" in GenerationRequest.model_fields


def copy_requests(
    run: str, n: int, *, tenant: str = "bench", priority: str | None = None
) -> list[GenerationRequest]:
    extra: dict[str, Any] = {"priority": priority} if priority and has_priority() else {}
    return [
        GenerationRequest(
            request_id=f"{run}-{i:06d}",
            idempotency_key=f"{run}-{i:06d}",
            tenant=tenant,
            campaign_id=run,
            kind=AssetKind.TEXT,
            prompt_template="Copy for ${persona}, request " + f"{run}-{i:06d}",
            variables={"persona": f"p{i % 97}"},
            constraints=Constraints(max_chars=280),
            **extra,
        )
        for i in range(n)
    ]


def stamp(requests: list[GenerationRequest]) -> list[GenerationRequest]:
    now = utc_now()
    return [r.model_copy(update={"created_at": now}) for r in requests]


def routing_file(path: Path, server: SlowServer, budget_ms: int | None = None) -> Path:
    """The copy alias on the slow server, every policy at its default."""
    budget = f"    latency_budget_ms: {budget_ms}\n" if budget_ms is not None else ""
    path.write_text(
        f"""providers:
  local:
    type: openai
    base_url: {server.openai_base_url}
aliases:
  copy:
{budget}    chain:
      - {{provider: local, model: bench-model, version: bench-model-1,
         price: {{input_per_1k: 0.00015, output_per_1k: 0.0006}}}}
default_alias: copy
"""
    )
    return path


def destinations_file(
    path: Path, root: Path, server: SlowServer, *, dam_on_disk: bool = False
) -> Path:
    """Tenant ``dam`` to the server's 1 s/PUT DAM, or (``dam_on_disk``) to a folder."""
    dam = (
        f"{{type: filesystem, root: {root / 'dam'}}}"
        if dam_on_disk
        else f'{{type: http, url: "{server.url}/dam/{{tenant}}/{{campaign_id}}/{{name}}"}}'
    )
    path.write_text(
        f"""destinations:
  files: {{type: filesystem, root: {root}}}
  dam: {dam}
default: files
routes:
  - {{tenant: dam, destination: dam}}
"""
    )
    return path


@dataclass
class Env:
    bootstrap: str
    root: Path
    server: SlowServer
    profile: Profile

    def settings(self, **overrides: Any) -> Settings:
        uid = uuid.uuid4().hex[:10]
        return Settings(
            kafka_bootstrap=self.bootstrap,
            app_id=f"prov-{uid}",
            topic_prefix=f"prov-{uid}",
            blob_dir=self.root / uid / "blobs",
            delivery_dir=self.root / uid / "delivery",
            data_dir=self.root / uid / "worker",
            web_port=0,
            **overrides,
        )

    def file(self, name: str) -> Path:
        return self.root / f"{uuid.uuid4().hex[:8]}-{name}"


# ---------------------------------------------------------------- one line, one worker


@asynccontextmanager
async def worker_on(settings: Settings, logs: Path) -> AsyncIterator[WorkerProcess]:
    """Fresh topics and one warmed-up worker for the block."""
    await ensure_topics(settings, line_topic_specs(settings))
    worker = WorkerProcess(settings, logs / f"{settings.app_id}.log").start()
    try:
        warm = stamp(copy_requests(f"warm-{uuid.uuid4().hex[:6]}", 4))
        async with LineClient(settings) as client:
            await client.submit(warm)
        got: dict[str, Any] = {}
        until = time.monotonic() + 120
        while len(got) < len(warm) and time.monotonic() < until and worker.alive():
            got = await await_completions(settings, [r.request_id for r in warm], timeout=2)
        if len(got) != len(warm):
            state = "running" if worker.alive() else "exited"
            raise SystemExit(
                f"warm-up got {len(got)}/{len(warm)} completions (worker {state}; log "
                f"{worker.log_path}):\n{worker.log_tail()}"
            )
        yield worker
    finally:
        worker.stop()


class Completions:
    """Every completion of the line's ``.completed`` read so far, by request id."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.seen: dict[str, AssetCompleted] = {}
        self._reader: Any = None

    async def __aenter__(self) -> Completions:
        self._reader = await open_completion_reader(self.settings)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self._reader.stop()

    async def wait_for(self, ids: Iterable[str], until: float, also: Iterable[str] = ()) -> bool:
        """Read until every id has completed or the monotonic clock passes ``until``; the
        completions of ``also`` are kept too, but not waited for."""
        wanted = set(ids)
        kept = wanted | set(also)

        def add(done: AssetCompleted) -> None:
            self.seen.setdefault(done.request_id, done)

        while not wanted.issubset(self.seen) and time.monotonic() < until:
            await await_completions(
                self.settings,
                kept - set(self.seen),
                timeout=min(2.0, max(0.1, until - time.monotonic())),
                consumer=self._reader,
                on_completion=add,
            )
        return wanted.issubset(self.seen)

    def of(self, ids: Iterable[str]) -> list[AssetCompleted]:
        return [self.seen[i] for i in ids if i in self.seen]


def seconds_to_complete(done: Iterable[AssetCompleted], since: datetime) -> list[float]:
    return [(d.completed_at - since).total_seconds() for d in done]


def request_times(done: Iterable[AssetCompleted]) -> list[float]:
    """request->completion of each, in seconds."""
    return [d.timings_ms.get("total", float("nan")) / 1000.0 for d in done]


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def r2(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def failed_on_429(done: Iterable[AssetCompleted]) -> int:
    def on_429(d: AssetCompleted) -> bool:
        text = " ".join(d.reasons).lower()
        return "rate_limited" in text or "429" in text

    return sum(1 for d in done if d.status.value == "FAILED" and on_429(d))


def stage_medians_ms(done: list[AssetCompleted]) -> dict[str, float]:
    """Median ms per stage timing of the completions, and ``queued``: total minus the stages
    (time spent waiting between and inside the stages' queues)."""
    keys = ("generate", "validate", "deliver", "total")
    out = {k: statistics.median(d.timings_ms.get(k, 0.0) for d in done) for k in keys if done}
    if done:
        out["queued"] = statistics.median(
            d.timings_ms.get("total", 0.0) - sum(d.timings_ms.get(k, 0.0) for k in keys[:3])
            for d in done
        )
    return {k: round(v, 1) for k, v in out.items()}


async def first_records_ms(settings: Settings, topic: str, ids: set[str]) -> dict[str, int]:
    """Each id's first record on ``topic``: its broker timestamp (ms)."""
    first: dict[str, int] = {}
    for record in await read_to_end(settings, topic):
        key = record.key.decode(errors="replace") if record.key is not None else None
        if key in ids:
            first.setdefault(key, record.timestamp)
    return first


async def handoffs_p50_s(settings: Settings, ids: set[str], since: datetime) -> dict[str, float]:
    """When the measured requests left generate (on ``.raw``) and validate (``.approved``),
    median s after ``since``, from the records' broker timestamps: where a request waited."""
    names = TopicNames.with_prefix(settings.topic_prefix)
    start_ms = since.timestamp() * 1000.0
    out: dict[str, float] = {}
    for stage, topic in (("raw", names.raw), ("approved", names.approved)):
        first = await first_records_ms(settings, topic, ids)
        if first:
            out[stage] = round(statistics.median(first.values()) - start_ms, 0) / 1000.0
            out[f"{stage}_max"] = round(max(first.values()) - start_ms, 0) / 1000.0
    return out


#: The hops of a request, in order: (name, from, to) over the moments of :func:`hops_s`.
HOPS = (
    ("to_call", "created", "call_start"),  # taken, scheduled, a provider slot
    ("call", "call_start", "call_end"),  # the provider (all attempts)
    ("to_raw", "call_end", "raw"),  # blob, generation record, the send to .raw
    ("validate", "raw", "approved"),  # validate's intake, queue and checks
    ("deliver", "approved", "completed"),  # deliver's intake, queue, delivery, the ledger
)


async def hops_s(
    settings: Settings, done: list[AssetCompleted], calls: dict[str, list[list[float | None]]]
) -> tuple[dict[str, dict[str, float | None]], dict[str, dict[str, float | None]]]:
    """Where the measured requests spent their time, hop by hop (:data:`HOPS`): p50 and max
    seconds of each, from the request's ``created_at`` (``completed_at`` minus the total), the
    provider's arrival and answer times of its calls, the broker timestamps of its first
    ``.raw`` and ``.approved`` records and its ``completed_at`` (one machine clock); and
    those moments of each request (epoch seconds)."""
    names = TopicNames.with_prefix(settings.topic_prefix)
    ids = {d.request_id for d in done}
    raw = await first_records_ms(settings, names.raw, ids)
    approved = await first_records_ms(settings, names.approved, ids)
    per_hop: dict[str, list[float]] = {name: [] for name, _, _ in HOPS}
    each: dict[str, dict[str, float | None]] = {}
    for d in done:
        made = calls.get(d.request_id) or []
        answered = [end for _, end in made if end is not None]
        moments = {
            "created": d.completed_at.timestamp() - d.timings_ms.get("total", 0.0) / 1000.0,
            "call_start": min((start for start, _ in made if start is not None), default=None),
            "call_end": max(answered, default=None),
            "raw": raw[d.request_id] / 1000.0 if d.request_id in raw else None,
            "approved": approved[d.request_id] / 1000.0 if d.request_id in approved else None,
            "completed": d.completed_at.timestamp(),
        }
        each[d.request_id] = {k: None if v is None else round(v, 3) for k, v in moments.items()}
        for name, start, end in HOPS:
            a, b = moments[start], moments[end]
            if a is not None and b is not None:
                per_hop[name].append(b - a)
    return {
        name: {"p50": r2(pct(values, 50)), "max": r2(max(values, default=None))}
        for name, values in per_hop.items()
    }, each


def hops_text(hops: dict[str, dict[str, float | None]]) -> str:
    return (
        ", ".join(f"{name} {_s(h['p50'])}/{_s(h['max'])}" for name, h in hops.items())
        + " s (p50/max)"
    )


def statuses(done: Iterable[AssetCompleted]) -> dict[str, int]:
    out: dict[str, int] = {}
    for d in done:
        out[d.status.value] = out.get(d.status.value, 0) + 1
    return out


@dataclass
class Burst:
    """N requests submitted at once and how fast they completed."""

    requests: int
    completed: int
    seconds: float  # from the submit to the last completion seen (or to the cap)
    capped: bool
    statuses: dict[str, int]
    failed_429: int
    times_s: list[float]
    stages_p50_ms: dict[str, float]
    others_done: int = 0  # of the requests not measured, completed before the last measured one
    others_done_at_last_batch: int = 0  # of those, completed when the last batch was submitted
    handoffs_s: dict[str, float] | None = None
    done: list[AssetCompleted] | None = None

    @property
    def per_s(self) -> float:
        return self.completed / self.seconds if self.seconds > 0 else 0.0


async def burst(
    settings: Settings,
    batches: list[list[GenerationRequest]],
    measured: set[str],
    max_s: float,
    pause_s: float = 0.0,
) -> Burst:
    """Submit ``batches`` one after the other (``pause_s`` apart), wait for the ``measured``
    ids (at most ``max_s``)."""
    others = {r.request_id for batch in batches for r in batch} - measured
    async with Completions(settings) as completions:
        started = utc_now()
        until = time.monotonic() + max_s
        async with LineClient(settings) as client:
            last_batch_at = started
            for number, batch in enumerate(batches):
                if number and pause_s:
                    await asyncio.sleep(pause_s)
                last_batch_at = utc_now()
                await client.submit(stamp(batch))
        complete = await completions.wait_for(measured, until, also=others)
        done = completions.of(sorted(measured))
        others_done = completions.of(others)
    handoffs = await handoffs_p50_s(settings, measured, started)
    ends = seconds_to_complete(done, started)
    seconds = max(ends) if complete and ends else max_s
    last = max((d.completed_at for d in done), default=None) if complete else None
    before = sum(1 for d in others_done if last is None or d.completed_at <= last)
    at_last_batch = sum(1 for d in others_done if d.completed_at <= last_batch_at)
    return Burst(len(measured), len(done), seconds, not complete, statuses(done),
                 failed_on_429(done), request_times(done), stage_medians_ms(done),
                 before, at_last_batch, handoffs, done)  # fmt: skip


# ---------------------------------------------------------------- scenarios


Row = dict[str, Any]


async def scenario_throughput(env: Env) -> Row:
    p = env.profile
    logs = env.root / "logs"
    offline_settings = env.settings()
    async with worker_on(offline_settings, logs):
        reqs = copy_requests(f"off-{uuid.uuid4().hex[:6]}", p.throughput_n)
        offline = await burst(offline_settings, [reqs], {r.request_id for r in reqs}, p.max_s)
    settings = env.settings(routing_file=routing_file(env.file("routing.yaml"), env.server))
    async with worker_on(settings, logs):
        await env.server.reset()
        reqs = copy_requests(f"srv-{uuid.uuid4().hex[:6]}", p.throughput_n)
        slow = await burst(settings, [reqs], {r.request_id for r in reqs}, p.max_s)
        stats = await env.server.stats()
    ideal = min(env.server.capacity_per_s, offline.per_s)
    ratio = slow.per_s / ideal if ideal else 0.0
    met = ratio >= 0.8 and slow.failed_429 == 0 and not slow.capped
    return {
        "scenario": "throughput",
        "requests": p.throughput_n,
        "measured": f"{slow.per_s:.1f} assets/s ({slow.completed} in {slow.seconds:.0f} s); "
        f"offline {offline.per_s:.1f}/s; ratio {ratio:.2f}; failed on 429: {slow.failed_429}; "
        f"429s sent {stats['rate_limited']}; max in flight {stats['max_in_flight']}",
        "target": ">= 0.8 x min(128/s, offline), 0 failed on 429",
        "met": met,
        "capped": slow.capped or offline.capped,
        "assets_per_s": r2(slow.per_s),
        "offline_assets_per_s": r2(offline.per_s),
        "server_capacity_per_s": r2(env.server.capacity_per_s),
        "ratio_to_ideal": r2(ratio),
        "failed_on_429": slow.failed_429,
        "server": stats,
        "slow": _burst_json(slow),
        "offline": _burst_json(offline),
    }


async def scenario_priority(env: Env) -> Row:
    return await _priority(env, "priority", 0.0)


async def scenario_priority_waiting(env: Env) -> Row:
    return await _priority(env, "priority-waiting", env.profile.settle_s)


async def _priority(env: Env, name: str, settle_s: float) -> Row:
    """20 HIGH behind 10,000 NORMAL, submitted ``settle_s`` after them."""
    p = env.profile
    if not has_priority():
        return {
            "scenario": name,
            "requests": p.queued_n + p.high_n,
            "measured": "skipped: GenerationRequest has no priority field yet",
            "target": "HIGH p99 <= 4 s",
            "met": None,
            "skipped": True,
        }
    routing = routing_file(env.file("routing.yaml"), env.server, LONG_BUDGET_MS)
    settings = env.settings(routing_file=routing)
    async with worker_on(settings, env.root / "logs"):
        await env.server.reset()
        run = uuid.uuid4().hex[:6]
        normal = copy_requests(f"normal-{run}", p.queued_n, priority="NORMAL")
        high = copy_requests(f"high-{run}", p.high_n, priority="HIGH")
        measured = {r.request_id for r in high}
        result = await burst(settings, [normal, high], measured, p.max_s, pause_s=settle_s)
        stats = await env.server.stats()
        calls = await env.server.calls(f"high-{run}")
        hops, moments = await hops_s(settings, result.done or [], calls)
    p50, p99 = pct(result.times_s, 50), pct(result.times_s, 99)
    target = env.server.latency[1] + 1.0
    met = not result.capped and p99 is not None and p99 <= target
    waiting = ""
    if settle_s:
        still = p.queued_n - result.others_done_at_last_batch
        waiting = f"HIGH sent {settle_s:g} s after the NORMAL, {still} of them still waiting; "
    return {
        "scenario": name,
        "requests": p.queued_n + p.high_n,
        "measured": f"{waiting}HIGH p50 {_s(p50)} s, p99 {_s(p99)} s "
        f"({result.completed}/{p.high_n} HIGH done{' by the cap' if result.capped else ''}; "
        f"{result.others_done} NORMAL done {'by then' if not result.capped else 'in the cap'}; "
        f"HIGH calls {_arrivals(stats, f'high-{run}')}, "
        f"NORMAL {_arrivals(stats, f'normal-{run}')}; HIGH {_handoffs(result)}; "
        f"HIGH hops {hops_text(hops)})",
        "target": f"HIGH p99 <= {target:g} s",
        "met": met,
        "capped": result.capped,
        "high_p50_s": r2(p50),
        "high_p99_s": r2(p99),
        "high_hops_s": hops,
        "high_moments": moments,
        "server": stats,
        "high": _burst_json(result),
    }


async def scenario_fairness(env: Env) -> Row:
    return await _fairness(env, "fairness", 0.0)


async def scenario_fairness_waiting(env: Env) -> Row:
    return await _fairness(env, "fairness-waiting", env.profile.settle_s)


async def _fairness(env: Env, name: str, settle_s: float) -> Row:
    """b's 100 beside a's 10,000, submitted ``settle_s`` after them."""
    p = env.profile
    logs = env.root / "logs"
    run = uuid.uuid4().hex[:6]

    def settings() -> Settings:
        routing = routing_file(env.file("routing.yaml"), env.server, LONG_BUDGET_MS)
        return env.settings(routing_file=routing)

    alone_settings = settings()
    async with worker_on(alone_settings, logs):
        b = copy_requests(f"b-alone-{run}", p.tenant_b_n, tenant="b")
        alone = await burst(alone_settings, [b], {r.request_id for r in b}, p.max_s)
    shared_settings = settings()
    async with worker_on(shared_settings, logs):
        await env.server.reset()
        a = copy_requests(f"a-{run}", p.queued_n, tenant="a")
        b = copy_requests(f"b-{run}", p.tenant_b_n, tenant="b")
        measured = {r.request_id for r in b}
        shared = await burst(shared_settings, [a, b], measured, p.max_s, pause_s=settle_s)
        stats = await env.server.stats()
    alone_median = _median_or_none(alone)
    shared_median = _median_or_none(shared)
    ratio = shared_median / alone_median if shared_median and alone_median else None
    met = ratio is not None and ratio <= 2.0 and not shared.capped
    shared_text = (
        f"{shared_median:.1f} s" if shared_median is not None else f"> {p.max_s:.0f} s (cap)"
    )
    waiting = ""
    if settle_s:
        still = p.queued_n - shared.others_done_at_last_batch
        waiting = f"b sent {settle_s:g} s after a, {still} of a's still waiting; "
    return {
        "scenario": name,
        "requests": p.queued_n + p.tenant_b_n,
        "measured": f"{waiting}b's median {shared_text} behind a's {p.queued_n} vs "
        f"{_s(alone_median)} s "
        f"alone; ratio {_s(ratio)} ({shared.completed}/{p.tenant_b_n} of b done; "
        f"{shared.others_done} of a's done by b's last or the cap; b's calls "
        f"{_arrivals(stats, f'b-{run}')}, a's {_arrivals(stats, f'a-{run}')}; "
        f"b's {_handoffs(shared)})",
        "target": "<= 2x b alone",
        "met": met,
        "capped": shared.capped or alone.capped,
        "b_alone_median_s": r2(alone_median),
        "b_shared_median_s": r2(shared_median),
        "b_shared_median_lower_bound_s": p.max_s if shared_median is None else None,
        "ratio": r2(ratio),
        "server": stats,
        "alone": _burst_json(alone),
        "shared": _burst_json(shared),
    }


async def scenario_delivery(env: Env) -> Row:
    p = env.profile
    logs = env.root / "logs"
    run = uuid.uuid4().hex[:6]

    def settings(dam_on_disk: bool = False) -> Settings:
        out = env.file("out")
        yaml = env.file("destinations.yaml")
        dests = destinations_file(yaml, out, env.server, dam_on_disk=dam_on_disk)
        return env.settings(destinations_file=dests)

    # The same mix both times: the worker generates and validates 500 assets either way, and
    # only where the dam tenant's go differs (a fast folder, then the 1 s/PUT DAM). Measured
    # against files' 400 alone, the ratio also charged files for dam's share of the CPU (at
    # best 400/500 on a CPU-bound worker), not for the slow destination.
    alone_settings = settings(dam_on_disk=True)
    async with worker_on(alone_settings, logs):
        files = copy_requests(f"files-alone-{run}", p.delivery_n, tenant="files")
        dam = copy_requests(f"dam-alone-{run}", p.slow_dest_n, tenant="dam")
        mixed = _interleave(files, dam)
        alone = await burst(alone_settings, [mixed], {r.request_id for r in files}, p.max_s)
    shared_settings = settings()
    async with worker_on(shared_settings, logs):
        await env.server.reset()
        files = copy_requests(f"files-{run}", p.delivery_n, tenant="files")
        dam = copy_requests(f"dam-{run}", p.slow_dest_n, tenant="dam")
        mixed = _interleave(files, dam)
        shared = await burst(shared_settings, [mixed], {r.request_id for r in files}, p.max_s)
        stats = await env.server.stats()
    ratio = shared.per_s / alone.per_s if alone.per_s else 0.0
    met = ratio >= 0.8 and not shared.capped
    return {
        "scenario": "delivery",
        "requests": p.delivery_n + p.slow_dest_n,
        "measured": f"filesystem tenant {shared.per_s:.1f} assets/s beside a 1 s/PUT DAM "
        f"tenant ({p.slow_dest_n} assets) vs {alone.per_s:.1f}/s beside the same tenant "
        f"delivering to disk; ratio {ratio:.2f}"
        f"{'; capped' if shared.capped else ''}",
        "target": "ratio >= 0.8 (not slowed)",
        "met": met,
        "capped": shared.capped or alone.capped,
        "files_beside_disk_per_s": r2(alone.per_s),
        "files_shared_per_s": r2(shared.per_s),
        "ratio": r2(ratio),
        "server": stats,
        "alone": _burst_json(alone),
        "shared": _burst_json(shared),
    }


RUNNERS: dict[str, Callable[[Env], Any]] = {
    "throughput": scenario_throughput,
    "priority": scenario_priority,
    "priority-waiting": scenario_priority_waiting,
    "fairness": scenario_fairness,
    "fairness-waiting": scenario_fairness_waiting,
    "delivery": scenario_delivery,
}


def _interleave(a: list[GenerationRequest], b: list[GenerationRequest]) -> list[GenerationRequest]:
    """``b`` spread evenly through ``a``."""
    out: list[GenerationRequest] = []
    every = len(a) / max(1, len(b))
    taken = 0
    for i, request in enumerate(a):
        while taken < len(b) and taken * every <= i:
            out.append(b[taken])
            taken += 1
        out.append(request)
    return out + b[taken:]


def _median_or_none(result: Burst) -> float | None:
    """The median when at least half completed (the rest are slower still), else None."""
    if result.completed * 2 < result.requests or not result.times_s:
        return None
    padded = sorted(result.times_s) + [float("inf")] * (result.requests - result.completed)
    return statistics.median_low(padded)


def _arrivals(stats: dict[str, Any], run: str) -> str:
    """When a run's calls reached the provider, in s after the submit began."""
    seen = stats.get("runs", {}).get(run)
    if not seen:
        return "never reached the provider"
    return f"reached it at {seen['first_s']:.1f}-{seen['last_s']:.1f} s ({seen['calls']:.0f} calls)"


def _handoffs(b: Burst) -> str:
    h = b.handoffs_s or {}
    return (f"on .raw at p50 {_s(h.get('raw'))} / max {_s(h.get('raw_max'))} s, on .approved at "
            f"p50 {_s(h.get('approved'))} / max {_s(h.get('approved_max'))} s")  # fmt: skip


def _s(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _burst_json(b: Burst) -> dict[str, Any]:
    return {
        "requests": b.requests,
        "completed": b.completed,
        "seconds": round(b.seconds, 2),
        "assets_per_s": round(b.per_s, 2),
        "capped": b.capped,
        "statuses": b.statuses,
        "failed_on_429": b.failed_429,
        "p50_s": r2(pct(b.times_s, 50)),
        "p99_s": r2(pct(b.times_s, 99)),
        "stages_p50_ms": b.stages_p50_ms,
        "others_completed_before_last": b.others_done,
        "left_generate_and_validate_s": b.handoffs_s,
    }


# ---------------------------------------------------------------- table, JSON, main


def print_table(rows: list[Row]) -> None:
    heads = ("scenario", "requests", "measured", "target", "met")
    cells = [
        [str(r["scenario"]), str(r["requests"]), str(r["measured"]), str(r["target"]),
         "-" if r.get("met") is None else ("yes" if r["met"] else "no")]
        for r in rows
    ]  # fmt: skip
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(heads)]
    print("  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def line_version() -> str:
    """The commit the line runs from (``+dirty`` with uncommitted changes), if it is a checkout."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        head = git("rev-parse", "--short", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return head + ("+dirty" if dirty else "")


def write_json(path: Path, rows: list[Row], profile: Profile, line: str) -> None:
    """Merge this run's scenarios into ``path`` (scenarios run apart keep their own rows)."""
    try:
        result = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        result = {}
    scenarios = result.get("scenarios", {})
    command = " ".join(["python -m bench.providers", *sys.argv[1:]])
    at = datetime.now(UTC).isoformat(timespec="seconds")
    for row in rows:
        scenarios[row["scenario"]] = {**row, "command": command, "at": at, "line": line,
                                      "profile": profile.__dict__}  # fmt: skip
    result = {
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                    "load_avg_1m": round(os.getloadavg()[0], 2)},
        "server": {"latency_s": [1.0, 3.0], "max_in_flight": 256, "capacity_per_s": 128.0},
        "scenarios": {name: scenarios[name] for name in SCENARIOS if name in scenarios},
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")


async def run(names: list[str], env: Env) -> list[Row]:
    rows = []
    for name in names:
        print(f"[{datetime.now(UTC):%H:%M:%S}] {name} ...", flush=True)
        row = await RUNNERS[name](env)
        print(f"[{datetime.now(UTC):%H:%M:%S}] {name}: {row['measured']}", flush=True)
        rows.append(row)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small profile (CI, a first look)")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--n", type=int, default=None, help="throughput requests; others scale")
    parser.add_argument("--max-seconds", type=float, default=None, help="cap per phase")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--line", default=None, help="what the line is, for the JSON (a commit)")
    args = parser.parse_args()
    names = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    profile = QUICK if args.quick else FULL
    if args.n is not None:
        profile = profile.scaled(args.n)
    if args.max_seconds is not None:
        profile = replace(profile, max_s=args.max_seconds)
    path = args.json or Path(f"bench/results/providers{'-quick' if args.quick else ''}.json")
    # Fresh topics have no leader for a moment; not worth a warning each.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    root = Path(tempfile.mkdtemp(prefix="assetline-bench-providers-"))
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    broker = None
    if not bootstrap:
        port, ctrl = free_ports(2)
        broker = LocalBroker(root / "kafka", port=port, controller_port=ctrl, heap="1g")
        bootstrap = broker.up(timeout=120)
    try:
        with SlowServer() as server:
            rows = asyncio.run(run(names, Env(bootstrap, root, server, profile)))
    finally:
        if broker is not None:
            broker.down()
    print()
    print_table(rows)
    write_json(path, rows, profile, args.line or line_version())
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
