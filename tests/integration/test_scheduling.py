"""Who is served first, through a real worker and broker, against slow local providers.

Issue 16 parts 1-3: the generate stage keeps many calls in flight, each provider's bounded by
its adaptive limit (capped by the routing file's ``max_in_flight``); waiting requests are served
HIGH first, then by fair share across tenants; a request's deadline runs from its
``created_at`` and one that passes before its call starts fails ``deadline_exceeded`` unsent.

Each test runs one worker (all stages) against an OpenAI-shaped server on 127.0.0.1 that
answers after a fixed latency; the server logs which request each call was for (the prompt
names it), so a test can tell what was never sent. Orders and times come from the
completions' ``completed_at`` on ``.completed`` and the requests' ``created_at``. Request
counts are small so that each test takes well under a minute on a two-core machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from assetline.client import await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.records import (
    AssetCompleted,
    AssetKind,
    CompletionStatus,
    Constraints,
    GenerationRequest,
    Priority,
)
from streams.codecs import Codecs
from streams.settings import Settings
from streams.topics import TopicNames
from tests.integration.helpers import read_topic, submit_requests, worker_metric
from tests.support.provider_server import (
    Call,
    ProviderServer,
    Reply,
    openai_chat_response,
    provider_server,
)

pytestmark = pytest.mark.integration

CHAT = "/chat/completions"
PROVIDER = "slow"
REPO = Path(__file__).resolve().parents[2]


@dataclass
class SlowChat:
    """A chat handler answering after ``latency_s``; logs each call's request id and time."""

    latency_s: float
    _lock: threading.Lock = field(default_factory=threading.Lock)
    arrivals: dict[str, float] = field(default_factory=dict)  # request id -> monotonic
    ids: list[str] = field(default_factory=list)

    def handler(self, body: Any) -> Reply:
        text = body["messages"][-1]["content"]
        rid = text.split("id=", 1)[1].split()[0]
        with self._lock:
            self.ids.append(rid)
            self.arrivals.setdefault(rid, time.monotonic())
        reply = openai_chat_response(f"Made for {rid}.", model=body["model"])
        return Reply(json=reply, delay_s=self.latency_s)


@pytest.fixture
def slow_chat() -> Iterator[Callable[[float], tuple[ProviderServer, SlowChat]]]:
    """Start a provider server whose chat calls take ``latency_s``; stopped after the test."""
    with contextlib.ExitStack() as servers:

        def start(latency_s: float) -> tuple[ProviderServer, SlowChat]:
            server = servers.enter_context(provider_server())
            chat = SlowChat(latency_s)
            server.handle("POST", CHAT, chat.handler)
            return server, chat

        yield start


def routing_file(path: Path, base_url: str, *, max_in_flight: int | None) -> Path:
    """One OpenAI-shaped provider, no retries on errors, a breaker that never opens, and an
    alias budget (the deadline of requests that set none) far beyond each test's run."""
    cap = f", max_in_flight: {max_in_flight}" if max_in_flight is not None else ""
    path.write_text(
        f"""providers:
  {PROVIDER}: {{type: openai, base_url: "{base_url}"{cap},
          breaker: {{failure_threshold: 1000000, reset_after_s: 30}}}}
aliases:
  copy:
    latency_budget_ms: 120000
    chain:
      - {{provider: {PROVIDER}, model: m, version: m-1, timeout_s: 30, max_retries: 0,
         price: {{input_per_1k: 0.001, output_per_1k: 0.002}}}}
default_alias: copy
"""
    )
    return path


def copy_request(
    rid: str,
    tenant: str = "acme",
    *,
    priority: Priority = Priority.NORMAL,
    latency_budget_ms: int | None = None,
    created_at: datetime | None = None,
) -> GenerationRequest:
    extra: dict[str, Any] = {} if created_at is None else {"created_at": created_at}
    return GenerationRequest(
        request_id=rid,
        idempotency_key=rid,
        tenant=tenant,
        campaign_id="scheduling",
        kind=AssetKind.TEXT,
        prompt_template=f"Headline id={rid} for ${{p}}",
        variables={"p": "runners"},
        constraints=Constraints(max_chars=200),
        priority=priority,
        latency_budget_ms=latency_budget_ms,
        **extra,
    )


def batch(run: str, label: str, count: int, **kwargs: Any) -> list[GenerationRequest]:
    tenant = kwargs.pop("tenant", "acme")
    return [copy_request(f"{run}-{label}-{i:03d}", tenant, **kwargs) for i in range(count)]


def ids_of(requests: list[GenerationRequest]) -> list[str]:
    return [r.request_id for r in requests]


def completions(
    settings: Settings, ids: list[str], timeout: float, worker: WorkerProcess
) -> dict[str, AssetCompleted]:
    """Exactly one completion per id, within ``timeout`` seconds."""
    seen = asyncio.run(await_completions(settings, ids, timeout=timeout))
    missing = set(ids) - set(seen)
    assert not missing, f"{len(missing)} of {len(ids)} did not complete\n{worker.log_tail()}"
    doubled = {rid: len(events) for rid, events in seen.items() if len(events) != 1}
    assert not doubled, f"completed more than once: {doubled}"
    return {rid: events[0] for rid, events in seen.items()}


def completed_so_far(settings: Settings, ids: list[str]) -> dict[str, AssetCompleted]:
    """The completions of ``ids`` on the topic now (read for 3 s: what the worker finished a
    moment ago has landed); at most one each."""
    seen = asyncio.run(await_completions(settings, ids, timeout=3.0))
    doubled = {rid: len(events) for rid, events in seen.items() if len(events) != 1}
    assert not doubled, f"completed more than once: {doubled}"
    return {rid: events[0] for rid, events in seen.items()}


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def warm_up(settings: Settings, worker: WorkerProcess, run: str) -> None:
    """One request through the whole line: partitions assigned, tables recovered."""
    warm = copy_request(f"{run}-warm", "warm-co")
    asyncio.run(submit_requests(settings, [warm]))
    completions(settings, [warm.request_id], timeout=120, worker=worker)


def peak_in_flight(calls: list[Call]) -> int:
    """The most calls the server was answering at once."""
    edges = sorted([(c.started, 1) for c in calls] + [(c.ended, -1) for c in calls])
    peak = now = 0
    for _, step in edges:
        now += step
        peak = max(peak, now)
    return peak


def sent_after(chat: SlowChat, ids: list[str], since: float) -> list[float]:
    """When the provider first saw each of ``ids``, in seconds after ``since``, sorted."""
    return sorted(round(chat.arrivals[rid] - since, 2) for rid in ids if rid in chat.arrivals)


def seconds(done: AssetCompleted, request: GenerationRequest) -> float:
    return (done.completed_at - request.created_at).total_seconds()


def line_with(line_settings: Settings, routing: Path) -> Settings:
    return line_settings.model_copy(update={"routing_file": routing})


@pytest.mark.timeout(150)
def test_high_priority_requests_overtake_a_normal_backlog(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    slow_chat: Callable[[float], tuple[ProviderServer, SlowChat]],
    tmp_path: Path,
) -> None:
    latency_s, cap = 1.0, 4
    server, chat = slow_chat(latency_s)
    settings = line_with(
        line_settings, routing_file(tmp_path / "r.yaml", server.url, max_in_flight=cap)
    )
    run = uuid.uuid4().hex[:8]
    worker = start_worker(settings)
    warm_up(settings, worker, run)

    normal = batch(run, "normal", 120)
    asyncio.run(submit_requests(settings, normal))
    # The backlog formed: the worker took the requests and the provider is answering them.
    wait_for(lambda: len(chat.ids) >= 2 * cap + 1, 60, "the NORMAL backlog to start")
    high = batch(run, "high", 5, priority=Priority.HIGH)
    submitted = time.monotonic()
    asyncio.run(submit_requests(settings, high))

    done_high = completions(settings, ids_of(high), timeout=60, worker=worker)
    assert {d.status for d in done_high.values()} == {CompletionStatus.DELIVERED}
    high_last = max(d.completed_at for d in done_high.values())
    # Every NORMAL completed by then is on the topic within a moment; the rest complete later.
    normal_done = completed_so_far(settings, ids_of(normal))
    normal_before = sum(d.completed_at <= high_last for d in normal_done.values())
    high_s = sorted(seconds(done_high[r.request_id], r) for r in high)
    print(
        f"\nHIGH request->completion s: {[round(s, 2) for s in high_s]}; "
        f"NORMAL completed before the last HIGH: {normal_before}/{len(normal)}; "
        f"HIGH calls reached the provider {sent_after(chat, ids_of(high), submitted)} s after "
        f"submission; server peak in flight {peak_in_flight(server.calls)}"
    )
    assert {d.status for d in normal_done.values()} <= {CompletionStatus.DELIVERED}
    assert normal_before <= 0.2 * len(normal), (normal_before, high_s)
    # Five HIGH through four slots: the next free slot, then two rounds at most, then the
    # rest of the line; well within a few provider latencies.
    assert high_s[-1] <= 5 * latency_s, high_s
    # A HIGH call may take the urgent reserve above a full limit (a tenth, at least 2).
    assert peak_in_flight(server.calls) <= cap + 2


@pytest.mark.timeout(150)
def test_high_requests_skip_a_backlog_still_in_kafka_through_the_urgent_topic(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    slow_chat: Callable[[float], tuple[ProviderServer, SlowChat]],
    tmp_path: Path,
) -> None:
    """The worker takes in only 16 events ahead, so most of the NORMAL backlog is still on
    ``.requests``, where Kafka has no priority: a HIGH record there would be taken only after
    them (about 180 at 4 a second: 45 s). The SDK sends HIGH to ``.requests.urgent``, which the
    generate stage takes at once into the same pool, where HIGH goes first."""
    latency_s, cap = 1.0, 4
    server, chat = slow_chat(latency_s)
    settings = line_with(
        line_settings, routing_file(tmp_path / "r.yaml", server.url, max_in_flight=cap)
    ).model_copy(update={"generate_concurrency": 8, "stage_max_waiting": 8})
    run = uuid.uuid4().hex[:8]
    worker = start_worker(settings)
    warm_up(settings, worker, run)

    normal = batch(run, "normal", 200)
    asyncio.run(submit_requests(settings, normal))
    wait_for(lambda: len(chat.ids) >= 2 * cap + 1, 60, "the NORMAL backlog to start")
    high = batch(run, "high", 5, priority=Priority.HIGH)
    submitted = time.monotonic()
    asyncio.run(submit_requests(settings, high))

    done_high = completions(settings, ids_of(high), timeout=60, worker=worker)
    assert {d.status for d in done_high.values()} == {CompletionStatus.DELIVERED}
    high_last = max(d.completed_at for d in done_high.values())
    normal_done = completed_so_far(settings, ids_of(normal))
    normal_before = sum(d.completed_at <= high_last for d in normal_done.values())
    high_s = sorted(seconds(done_high[r.request_id], r) for r in high)
    print(
        f"\nHIGH request->completion s: {[round(s, 2) for s in high_s]}; "
        f"NORMAL completed before the last HIGH: {normal_before}/{len(normal)}; "
        f"HIGH calls reached the provider {sent_after(chat, ids_of(high), submitted)} s after "
        f"submission"
    )
    # What was taken ahead (16 at most) and what the provider answered meanwhile, not the
    # 200: the HIGH ones did not wait for the backlog still on .requests.
    assert normal_before <= 0.2 * len(normal), (normal_before, high_s)
    assert high_s[-1] <= 5 * latency_s, high_s


@pytest.mark.timeout(150)
def test_a_high_requests_regenerations_go_to_the_urgent_topic(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    slow_chat: Callable[[float], tuple[ProviderServer, SlowChat]],
    tmp_path: Path,
) -> None:
    """The provider's copy is always too long (max_chars 10), a repairable failure: validate
    re-generates it up to the profile's 3 attempts, each on the intake of its priority."""
    server, _chat = slow_chat(0.05)
    profiles = tmp_path / "profiles"
    profiles.mkdir()
    (profiles / "acme.yaml").write_text("id: acme\nname: ACME\nmax_attempts: 3\nreview: false\n")
    settings = line_with(
        line_settings, routing_file(tmp_path / "r.yaml", server.url, max_in_flight=None)
    ).model_copy(update={"profiles_dir": profiles})
    run = uuid.uuid4().hex[:8]
    short = {"brand_profile_id": "acme", "constraints": Constraints(max_chars=10)}
    high = copy_request(f"{run}-high", priority=Priority.HIGH).model_copy(update=short)
    normal = copy_request(f"{run}-normal").model_copy(update=short)
    asyncio.run(submit_requests(settings, [high, normal]))
    worker = start_worker(settings)
    done = completions(settings, [high.request_id, normal.request_id], timeout=90, worker=worker)
    assert {d.status for d in done.values()} == {CompletionStatus.REJECTED}, done
    assert {d.attempt for d in done.values()} == {3}

    names = TopicNames.with_prefix(settings.topic_prefix)
    codecs = Codecs.load()

    def attempts(topic: str) -> dict[str, list[int]]:
        found: dict[str, list[int]] = {}
        for m in asyncio.run(read_topic(settings, topic, min_messages=3, timeout=10)):
            request = codecs.request.decode(m.value)  # type: ignore[attr-defined]
            found.setdefault(request.request_id, []).append(request.attempt)
        return found

    assert attempts(names.requests_urgent) == {high.request_id: [1, 2, 3]}
    assert attempts(names.requests) == {normal.request_id: [1, 2, 3]}


@pytest.mark.timeout(150)
def test_a_small_tenant_is_not_starved_by_another_tenants_campaign(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    slow_chat: Callable[[float], tuple[ProviderServer, SlowChat]],
    tmp_path: Path,
) -> None:
    latency_s, cap = 0.5, 4
    server, chat = slow_chat(latency_s)
    settings = line_with(
        line_settings, routing_file(tmp_path / "r.yaml", server.url, max_in_flight=cap)
    )
    run = uuid.uuid4().hex[:8]
    worker = start_worker(settings)
    warm_up(settings, worker, run)

    a = batch(run, "a", 150, tenant="tenant-a")
    asyncio.run(submit_requests(settings, a))
    wait_for(lambda: len(chat.ids) >= 2 * cap + 1, 60, "tenant A's backlog to start")
    b = batch(run, "b", 10, tenant="tenant-b")
    submitted = time.monotonic()
    asyncio.run(submit_requests(settings, b))

    done_b = completions(settings, ids_of(b), timeout=60, worker=worker)
    assert {d.status for d in done_b.values()} == {CompletionStatus.DELIVERED}
    b_last = max(d.completed_at for d in done_b.values())
    # Every one of A's completed by then is on the topic within a moment; the rest come later.
    done_a = completed_so_far(settings, ids_of(a))
    assert {d.status for d in done_a.values()} <= {CompletionStatus.DELIVERED}
    a_before_b = sum(d.completed_at <= b_last for d in done_a.values())
    b_s = [seconds(done_b[r.request_id], r) for r in b]
    print(
        f"\nB request->completion s: median {statistics.median(b_s):.2f}, max {max(b_s):.2f}; "
        f"A completed before B's last: {a_before_b}/{len(a)}; B's calls reached the provider "
        f"{sent_after(chat, ids_of(b), submitted)} s after B was submitted"
    )
    assert a_before_b < len(a) // 2, (a_before_b, b_s)
    assert peak_in_flight(server.calls) <= cap


@pytest.mark.timeout(150)
def test_a_request_whose_deadline_passes_while_queued_fails_unsent(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    slow_chat: Callable[[float], tuple[ProviderServer, SlowChat]],
    tmp_path: Path,
) -> None:
    latency_s, cap = 1.0, 2
    server, chat = slow_chat(latency_s)
    settings = line_with(
        line_settings, routing_file(tmp_path / "r.yaml", server.url, max_in_flight=cap)
    )
    run = uuid.uuid4().hex[:8]
    worker = start_worker(settings)
    warm_up(settings, worker, run)

    backlog = batch(run, "backlog", 20)  # 20 calls, 2 at a time, 1 s each: about 10 s
    asyncio.run(submit_requests(settings, backlog))
    wait_for(lambda: len(chat.ids) >= cap + 1, 60, "the backlog to start")
    # Behind the backlog (same tenant, same priority), due 3 s after creation.
    queued = batch(run, "queued", 5, latency_budget_ms=3000)
    # Already late when submitted: waited 60 s somewhere before reaching the line.
    late = batch(
        run,
        "late",
        3,
        latency_budget_ms=5000,
        created_at=datetime.now(UTC) - timedelta(seconds=60),
    )
    asyncio.run(submit_requests(settings, queued + late))

    done = completions(settings, ids_of(backlog + queued + late), timeout=120, worker=worker)
    assert all(done[r.request_id].status is CompletionStatus.DELIVERED for r in backlog)
    doomed = queued + late
    for r in doomed:
        d = done[r.request_id]
        assert d.status is CompletionStatus.FAILED, (r.request_id, d.status, d.reasons)
        assert any("deadline_exceeded" in reason for reason in d.reasons), d.reasons
        assert d.cost == 0.0, d.cost
    assert not set(chat.ids) & set(ids_of(doomed)), "a request past its deadline was sent"
    assert sorted(chat.ids) == sorted([f"{run}-warm", *ids_of(backlog)])
    # The queued ones failed at their deadline, not when the backlog drained (about 10 s).
    queued_s = sorted(seconds(done[r.request_id], r) for r in queued)
    backlog_last = max(seconds(done[r.request_id], backlog[0]) for r in backlog)
    print(
        f"\nqueued (3 s deadline) request->completion s: {[round(s, 2) for s in queued_s]}; "
        f"backlog drained {backlog_last:.1f} s after it was submitted; "
        f"queued reasons: {done[queued[0].request_id].reasons}; "
        f"late reasons: {done[late[0].request_id].reasons}"
    )
    assert queued_s[-1] < backlog_last, (queued_s, backlog_last)


@pytest.fixture
def quota_server() -> Iterator[str]:
    """``bench.slow_provider`` in its own process (the bench's server, run as it is): 0.5 s
    per chat call, HTTP 429 with ``Retry-After: 1`` to a call beyond 16 in flight; its base
    URL (``GET /stats`` counts calls, 429s and the most in flight)."""
    command = [sys.executable, "-m", "bench.slow_provider", "--latency-min", "0.5",
               "--latency-max", "0.5", "--max-in-flight", "16"]  # fmt: skip
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        assert line.startswith("listening "), line
        yield line.split(" ", 1)[1]
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.timeout(170)
def test_the_in_flight_limit_adapts_to_a_provider_that_answers_429_beyond_16(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    quota_server: str,
    tmp_path: Path,
) -> None:
    routing = tmp_path / "r.yaml"
    # Default settings: no max_in_flight, the default retries (2, honouring Retry-After) and
    # breaker (5 failures in a row open it; a 429 is not one since 23453aa: before, one
    # overshoot's burst of 429s opened it and failed ~260 of the 300 with breaker.open).
    routing.write_text(
        f"""providers:
  {PROVIDER}: {{type: openai, base_url: "{quota_server}/v1"}}
aliases:
  copy:
    chain:
      - {{provider: {PROVIDER}, model: m, version: m-1,
         price: {{input_per_1k: 0.001, output_per_1k: 0.002}}}}
default_alias: copy
"""
    )
    settings = line_with(line_settings, routing)
    run = uuid.uuid4().hex[:8]
    worker = start_worker(settings)
    warm_up(settings, worker, run)
    httpx.post(f"{quota_server}/reset", timeout=10).raise_for_status()

    requests = batch(run, "load", 300)
    started = time.monotonic()
    asyncio.run(submit_requests(settings, requests))
    done = completions(settings, ids_of(requests), timeout=120, worker=worker)
    elapsed = time.monotonic() - started
    stats = httpx.get(f"{quota_server}/stats", timeout=10).json()
    limit = worker_metric(
        settings.web_port, "assetline_provider_in_flight_limit", provider=PROVIDER
    )
    failed = {
        rid: d.reasons for rid, d in done.items() if d.status is not CompletionStatus.DELIVERED
    }
    print(
        f"\n300 requests in {elapsed:.1f} s; server: {stats}; in-flight limit at the end: {limit}"
    )
    assert not failed, f"{len(failed)} not delivered: {list(failed.items())[:3]}"
    assert stats["answered"] >= 300
    assert stats["max_in_flight"] <= 16
    # Overshoots are short: the first 429 halves the limit (seen: 3-33 429s per 300 requests).
    assert stats["rate_limited"] <= 0.2 * len(requests), stats
    assert limit is not None
    assert 4 <= limit <= 64, limit
