"""The chaos suite's machinery (issue 14 part 9): scenarios, faults, and the checks.

``python -m bench.chaos`` (the table and JSON) and tests/integration/test_chaos.py (the quick
profile in CI) both run it; see bench/chaos.py for what each scenario does and what each column
means. It lives here, beside the provider and webhook servers it drives, so the tests can import
it (``bench`` is not importable under pytest).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import SecretStr

from assetline.client import LineClient, open_completion_reader
from assetline.dev.broker import LocalBroker
from assetline.dev.child_worker import WorkerProcess
from schemas.attempts import generation_of
from schemas.records import AssetKind, Constraints, GenerationRequest, utc_now
from schemas.webhook_event import webhook_id
from streams.codecs import CodecError, Codecs
from streams.dead_letters import header_map
from streams.kafka import read_to_end
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs
from tests.support.provider_server import (
    ProviderServer,
    Reply,
    local_routing_file,
    openai_chat_response,
    openai_error,
)
from tests.support.webhook_receiver import SECRET, Answer, Receiver

CHAT = "/chat/completions"
HOOK_PATH = "/hooks/chaos"
RID_MARK = "rid="
SCENARIOS = ("kill", "rebalance", "broker")
POISON_KINDS = ("garbage", "bad-utf8", "oversize", "forged-attempt")
MAX_REQUEST_BYTES = 32 * 1024


@dataclass(frozen=True)
class Profile:
    """Sizes of one run; ``QUICK`` is what CI runs, ``FULL`` what the issue asks for."""

    name: str
    n: int  # ordinary requests per scenario
    feed_s: float  # the requests are fed evenly over this many seconds
    kill_every_s: float
    rounds: int
    broker_down_s: float
    poison_rate: float = 0.05
    latency_s: tuple[float, float] = (1.0, 3.0)
    error_rate: float = 0.10
    partitions: int = 6
    concurrency: int = 8
    max_poll_interval_s: float = 3.0
    session_timeout_s: float = 6.0  # the broker's group.min.session.timeout.ms is 6 s
    settle_s: float = 5.0  # after the last completion, for doubles that come late
    timeout_s: float = 300.0  # per scenario, from its first request

    @property
    def retry_after_s(self) -> float:
        """What the receiver's third answer asks for: longer than the max poll interval."""
        return self.max_poll_interval_s * 2 + 1

    @property
    def webhook_schedule(self) -> tuple[float, ...]:
        return (0.0, 0.5, 1.0, self.retry_after_s + 1)


FULL = Profile("full", n=900, feed_s=75.0, kill_every_s=15.0, rounds=5, broker_down_s=20.0)
QUICK = Profile(
    "quick",
    n=60,
    feed_s=9.0,
    kill_every_s=4.0,
    rounds=2,
    broker_down_s=5.0,
    settle_s=3.0,
    timeout_s=120.0,
)


# -- the slow provider --------------------------------------------------------------------


class SlowProvider:
    """Answers /chat/completions after 1-3 s, 10% with HTTP 500; the id is in the prompt."""

    def __init__(self, profile: Profile, seed: int = 14) -> None:
        self.profile = profile
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def handler(self, body: Any) -> Reply:
        with self._lock:
            low, high = self.profile.latency_s
            delay = self._random.uniform(low, high)
            fail = self._random.random() < self.profile.error_rate
        if fail:
            return Reply(status=500, json=openai_error("overloaded", "server_error"), delay_s=delay)
        rid = request_id_of(body)
        return Reply(
            json=openai_chat_response(f"Made for {rid}.", model=body["model"]), delay_s=delay
        )


def request_id_of(body: Any) -> str:
    text = " ".join(str(m.get("content", "")) for m in (body or {}).get("messages", []))
    return text.split(RID_MARK, 1)[1].split()[0] if RID_MARK in text else "?"


def paid_twice(server: ProviderServer) -> dict[str, tuple[float, float]]:
    """Calls started after a successful call for the same request had been answered.

    ``<request id>#<n>`` -> (when the first successful call was answered, when this one
    started), both monotonic; one entry per repeated call.
    """
    calls = [c for c in server.calls if c.path == CHAT]
    finished: dict[str, float] = {}
    for call in calls:
        if call.status == 200 and call.answered:
            rid = request_id_of(call.json)
            finished[rid] = min(finished.get(rid, call.ended), call.ended)
    repeated: dict[str, tuple[float, float]] = {}
    for call in calls:
        rid = request_id_of(call.json)
        if rid in finished and call.started > finished[rid]:
            repeated[f"{rid}#{len(repeated)}"] = (finished[rid], call.started)
    return repeated


async def recorded_repeats(
    settings: Settings, repeated: dict[str, tuple[float, float]]
) -> dict[str, tuple[float, float]]:
    """The repeats that started after their request's finished generation was *recorded* on
    ``.generations``: the line knew the call had finished and paid again anyway.

    The other repeats were answered by the provider but not yet recorded when the worker died
    (the answer still in its socket or in the record's produce round trip): calls in flight
    at the crash, from the line's point of view. The record's timestamp is the worker's wall
    clock (same machine); the calls' times are this process's monotonic clock.
    """
    if not repeated:
        return {}
    to_wall = time.time() - time.monotonic()
    names = TopicNames.with_prefix(settings.topic_prefix)
    first_record: dict[str, float] = {}
    for message in await read_to_end(settings.kafka_bootstrap, names.generations):
        rid = (message.key or b"").decode("utf-8", "replace").split("|", 1)[0]
        at = message.timestamp / 1000
        first_record[rid] = min(first_record.get(rid, at), at)
    return {
        key: times
        for key, times in repeated.items()
        if key.rsplit("#", 1)[0] in first_record
        and first_record[key.rsplit("#", 1)[0]] < times[1] + to_wall
    }


def paid_twice_note(
    repeated: dict[str, tuple[float, float]], faults: list[float], started: float
) -> str:
    """Each repeated call with its first answer and its start, in seconds since the scenario
    started, beside the faults' times (a diagnosis: a repeat right after a fault is a
    handover; one with no fault near it is a bug)."""
    parts = [
        f"{rid} answered t={answered - started:.1f} again t={again - started:.1f}"
        for rid, (answered, again) in repeated.items()
    ]
    at = ", ".join(f"{f - started:.1f}" for f in faults)
    return f"paid twice: {'; '.join(parts[:10])} (faults at t={at})"


def routing_file(path: Path, base_url: str) -> Path:
    """One OpenAI-shaped provider; 500s retried twice; a breaker that 10% errors never open.

    The alias's budget (the deadline of every request, from created_at) outlasts the backlog
    the profile builds on purpose (``concurrency`` calls at 1-3 s each), so every valid request
    reaches the provider: a deadline_exceeded request would exercise none of the faults.
    """
    return local_routing_file(
        path,
        base_url,
        model="chaos-model",
        timeout_s=30,
        max_retries=2,
        retry="{base_s: 0.2, cap_s: 1.0, max_retry_after_s: 5.0}",
        latency_budget_ms=900_000,
    )


# -- traffic --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Poison:
    key: str
    kind: str
    value: bytes


def request_for(run: str, i: int, callback_url: str) -> GenerationRequest:
    rid = f"{run}-{i:05d}"
    return GenerationRequest(
        request_id=rid,
        idempotency_key=rid,
        tenant="chaos",
        campaign_id=run,
        kind=AssetKind.TEXT,
        prompt_template=f"Copy for ${{persona}} {RID_MARK}{rid} please",
        variables={"persona": f"p{i % 13}"},
        constraints=Constraints(max_chars=280),
        callback_url=callback_url,
        created_at=utc_now(),
    )


def poison_for(run: str, i: int, codecs: Codecs) -> Poison:
    """Undecodable, oversize or forged: each must end on ``.deadletter`` with a reason."""
    kind = POISON_KINDS[i % len(POISON_KINDS)]
    key = f"{run}-poison-{i:04d}"
    if kind == "garbage":
        return Poison(key, kind, b"\x00\xffnot avro at all " + os.urandom(24))
    base = GenerationRequest(
        request_id=key,
        idempotency_key=key,
        tenant="chaos",
        campaign_id=run,
        kind=AssetKind.TEXT,
        prompt_template="@@MARK@@ banner ${p}",
        variables={"p": "x"},
    )
    if kind == "bad-utf8":
        value = codecs.request.encode(base).replace(
            b"@@MARK@@", b"\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8"
        )
    elif kind == "oversize":
        padded = base.model_copy(update={"variables": {"p": "x" * (MAX_REQUEST_BYTES + 4096)}})
        value = codecs.request.encode(padded)
    else:
        value = codecs.request.encode(base.model_copy(update={"attempt": 50}))
    return Poison(key, kind, value)


@dataclass
class Traffic:
    """What the harness put on ``.requests``, and when completions arrived."""

    requests: list[GenerationRequest] = field(default_factory=list)
    poison: list[Poison] = field(default_factory=list)
    done_at: dict[str, float] = field(default_factory=dict)  # request id -> first completion
    hooks: set[str] = field(default_factory=set)  # webhook ids of the completions seen
    last_completion_at: float = 0.0


def mix(run: str, profile: Profile, callback_url: str, codecs: Codecs) -> list[Any]:
    """The ordinary requests with poison spread evenly among them."""
    n_poison = max(1, round(profile.n * profile.poison_rate))
    every = max(1, profile.n // n_poison)
    items: list[Any] = []
    p = 0
    for i in range(profile.n):
        items.append(request_for(run, i, callback_url))
        if i % every == every // 2 and p < n_poison:
            items.append(poison_for(run, p, codecs))
            p += 1
    return items


async def feed(settings: Settings, items: list[Any], over_s: float, traffic: Traffic) -> None:
    """Submit ``items`` in ten chunks a second, evenly over ``over_s`` seconds."""
    topic = TopicNames.with_prefix(settings.topic_prefix).requests
    chunks = max(1, int(over_s * 10))
    size = max(1, -(-len(items) // chunks))
    start = time.monotonic()
    async with LineClient(settings) as client:
        for c, at in enumerate(range(0, len(items), size)):
            delay = start + c * over_s / chunks - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            chunk = items[at : at + size]
            good = [item for item in chunk if isinstance(item, GenerationRequest)]
            if good:
                await client.submit(good)
                traffic.requests.extend(good)
            for item in chunk:
                if isinstance(item, Poison):
                    await client.send_raw(topic, item.key.encode(), item.value)
                    traffic.poison.append(item)


async def follow(settings: Settings, traffic: Traffic, stop: asyncio.Event) -> None:
    """Note when each request first completes (survives the broker going away)."""
    codecs = Codecs.load()
    while not stop.is_set():
        try:
            reader = await open_completion_reader(settings)
        except Exception:
            await asyncio.sleep(1.0)
            continue
        try:
            while not stop.is_set():
                batches = await reader.getmany(timeout_ms=500)
                now = time.monotonic()
                for messages in batches.values():
                    for message in messages:
                        if message.value is None:
                            continue
                        with contextlib.suppress(CodecError):
                            done = codecs.completed.decode(message.value)
                            traffic.done_at.setdefault(done.request_id, now)
                            traffic.hooks.add(webhook_id(done.request_id, done.attempt))
                            traffic.last_completion_at = now
        except Exception:
            await asyncio.sleep(1.0)
        finally:
            with contextlib.suppress(Exception):
                await reader.stop()


# -- workers ---------------------------------------------------------------------------------


class Workers:
    """Worker slots, each with its own data dir; knows which exits the harness caused."""

    def __init__(self, settings: Settings, logs: Path) -> None:
        self.settings = settings
        self.logs = logs
        self.running: dict[int, WorkerProcess] = {}
        self.ended: list[WorkerProcess] = []
        self.self_exits: list[str] = []
        self.kills = 0
        self._starts = 0

    def start(self, slot: int) -> WorkerProcess:
        settings = self.settings.model_copy(
            update={"data_dir": self.settings.data_dir / f"slot-{slot}"}
        )
        log = self.logs / f"{settings.app_id}-slot{slot}-{self._starts}.log"
        self._starts += 1
        worker = WorkerProcess(settings, log).start()
        self.running[slot] = worker
        return worker

    def kill(self, slot: int) -> None:
        worker = self.running.pop(slot)
        worker.kill()
        self.kills += 1
        self.ended.append(worker)

    def stop(self, slot: int) -> None:
        worker = self.running.pop(slot)
        worker.stop(timeout=30)
        self.ended.append(worker)

    def check(self) -> None:
        """Record (once) any running worker that has exited on its own."""
        for slot, worker in list(self.running.items()):
            if not worker.alive():
                self.running.pop(slot)
                self.ended.append(worker)
                self.self_exits.append(f"slot {slot} (pid {worker.pid}): {worker.log_tail(15)}")

    def stop_all(self) -> None:
        self.check()
        for slot in list(self.running):
            self.stop(slot)


# -- one scenario ----------------------------------------------------------------------------


@dataclass
class Result:
    scenario: str
    profile: str
    requests: int
    kills: int
    lost: int
    doubled: int
    paid_twice: int  # repeated after the first call's generation was recorded
    poison: int
    dead_lettered: int
    hooks_missing: int
    recovery_s: float
    self_exits: int
    provider_calls: int
    wall_s: float
    #: Repeated after the provider answered but before the worker recorded it (it died).
    unrecorded_repeats: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """The issue's targets, all of them (paid twice included)."""
        return (
            self.lost == 0
            and self.doubled == 0
            and self.paid_twice == 0
            and self.dead_lettered == self.poison
            and self.hooks_missing == 0
            and self.self_exits == 0
        )


@dataclass
class Env:
    """What scenarios share: where to run, the broker (owned, for the outage), the servers."""

    bootstrap: str
    root: Path
    profile: Profile
    provider: ProviderServer
    receiver: Receiver
    broker: LocalBroker | None = None
    log: Callable[[str], None] = print


def line_settings(env: Env, scenario: str) -> Settings:
    uid = uuid.uuid4().hex[:8]
    profile = env.profile
    base = env.root / f"{scenario}-{uid}"
    return Settings(
        kafka_bootstrap=env.bootstrap,
        app_id=f"chaos-{scenario}-{uid}",
        topic_prefix=f"chaos-{scenario}-{uid}",
        topic_partitions=profile.partitions,
        blob_dir=base / "blobs",
        delivery_dir=base / "delivery",
        data_dir=base / "worker",
        web_port=0,
        session_timeout_s=profile.session_timeout_s,
        heartbeat_interval_s=0.5,
        commit_interval_s=0.5,
        generate_concurrency=profile.concurrency,
        routing_file=routing_file(base.with_suffix(".routing.yaml"), env.provider.url),
        api_keys={"webhooks": SecretStr(SECRET)},
        webhook_allow=("127.0.0.1",),
        webhook_schedule_s=profile.webhook_schedule,
        webhook_max_poll_interval_s=profile.max_poll_interval_s,
        max_request_bytes=MAX_REQUEST_BYTES,
        # ASSETLINE_CHAOS_LOG_LEVEL=info shows SafeConsumer's refetch and gap INFO lines.
        log_level=os.environ.get("ASSETLINE_CHAOS_LOG_LEVEL", "warn"),
    )


async def run_scenario(env: Env, scenario: str) -> Result:
    profile = env.profile
    if scenario == "broker" and env.broker is None:
        raise ValueError("the broker scenario needs a broker this harness owns")
    settings = line_settings(env, scenario)
    await ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings))
    env.provider.reset()
    env.provider.handle("POST", CHAT, SlowProvider(profile).handler)
    received_before = len(env.receiver.received)
    env.receiver.script(
        Answer(503),
        Answer(500),
        Answer(429, headers={"Retry-After": str(int(profile.retry_after_s))}),
    )
    codecs = Codecs.load()
    run = settings.app_id
    items = mix(run, profile, f"{env.receiver.url}{HOOK_PATH}", codecs)
    traffic = Traffic()
    workers = Workers(settings, env.root / "logs")
    stop_following = asyncio.Event()
    follower = asyncio.create_task(follow(settings, traffic, stop_following))
    started = time.monotonic()
    fault_at = started
    faults: list[float] = []
    notes: list[str] = []

    async def idle(seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            workers.check()
            await asyncio.sleep(min(0.5, max(0.0, end - time.monotonic())))

    try:
        if scenario == "kill":
            for slot in range(3):
                workers.start(slot)
            feeder = asyncio.create_task(feed(settings, items, profile.feed_s, traffic))
            for r in range(profile.rounds):
                await idle(profile.kill_every_s)
                slot = r % 3
                if slot in workers.running:
                    workers.kill(slot)
                    fault_at = time.monotonic()
                    faults.append(fault_at)
                    env.log(f"  kill: round {r + 1}, slot {slot} kill -9'd and restarted")
                    workers.start(slot)
            await feeder
        elif scenario == "rebalance":
            for slot in range(2):
                workers.start(slot)
            feeder = asyncio.create_task(feed(settings, items, profile.feed_s, traffic))
            await idle(profile.feed_s / 3)
            workers.start(2)
            faults.append(time.monotonic())
            env.log("  rebalance: slot 2 joined")
            await idle(profile.feed_s / 3)
            fault_at = time.monotonic()
            faults.append(fault_at)
            await asyncio.to_thread(workers.stop, 0)  # SIGTERM: a clean leave
            env.log(f"  rebalance: slot 0 left in {time.monotonic() - fault_at:.1f}s")
            await feeder
        else:
            assert env.broker is not None
            for slot in range(2):
                workers.start(slot)
            await feed(settings, items, profile.feed_s / 3, traffic)
            wanted = len(traffic.requests) // 4
            deadline = time.monotonic() + profile.timeout_s / 2
            while len(traffic.done_at) < wanted and time.monotonic() < deadline:
                await idle(0.5)
            fault_at = time.monotonic()
            faults.append(fault_at)
            env.log(f"  broker: stopping it with {len(traffic.done_at)} completions in")
            await asyncio.to_thread(env.broker.down)
            stopped_at = time.monotonic()
            await idle(profile.broker_down_s)
            starting_at = time.monotonic()
            await asyncio.to_thread(env.broker.up, 120.0)
            back = time.monotonic()
            notes.append(
                f"broker: stop took {stopped_at - fault_at:.1f}s, "
                f"down {starting_at - stopped_at:.1f}s, start took {back - starting_at:.1f}s "
                f"(unreachable ~{back - fault_at:.0f}s)"
            )
            env.log(f"  {notes[-1]}")

        ids = {r.request_id for r in traffic.requests}
        deadline = started + profile.timeout_s
        while time.monotonic() < deadline:
            workers.check()
            if ids <= traffic.done_at.keys() and hooks_pending(env, traffic, received_before) == 0:
                break
            await asyncio.sleep(1.0)
        else:
            notes.append(f"timed out after {profile.timeout_s:.0f}s")
        await idle(profile.settle_s)
    finally:
        stop_following.set()
        await follower
        workers.stop_all()
    wall = time.monotonic() - started
    recovery = max(0.0, traffic.last_completion_at - fault_at)
    checked = await check_topics(settings, traffic, env, received_before)
    notes.extend(checked.pop("notes"))
    notes.extend(workers.self_exits)
    repeated = paid_twice(env.provider)
    recorded = await recorded_repeats(settings, repeated)
    if recorded:
        notes.append(paid_twice_note(recorded, faults, started))
    unrecorded = {k: v for k, v in repeated.items() if k not in recorded}
    if unrecorded:
        notes.append("answered, not yet recorded at a crash (in flight): ")
        notes[-1] += paid_twice_note(unrecorded, faults, started).removeprefix("paid twice: ")
    return Result(
        scenario=scenario,
        profile=profile.name,
        requests=len(traffic.requests),
        kills=workers.kills,
        paid_twice=len(recorded),
        unrecorded_repeats=len(unrecorded),
        poison=len(traffic.poison),
        recovery_s=round(recovery, 1),
        self_exits=len(workers.self_exits),
        provider_calls=len([c for c in env.provider.calls if c.path == CHAT]),
        wall_s=round(wall, 1),
        notes=notes,
        **checked,
    )


async def trace_lost(settings: Settings, lost: list[str]) -> list[str]:
    """Where each lost request got to: its offsets on every stage topic, and each consumer
    group's committed offset on its ``.requests`` partition (the clue to who passed it)."""
    names = TopicNames.with_prefix(settings.topic_prefix)
    bootstrap = settings.kafka_bootstrap
    seen: dict[str, list[str]] = {rid: [] for rid in lost}
    home: dict[str, TopicPartition] = {}
    for topic in (
        names.requests,
        names.generations,
        names.raw,
        names.approved,
        names.rejected,
        names.deadletter,
    ):
        short = topic.removeprefix(f"{settings.topic_prefix}.")
        for message in await read_to_end(bootstrap, topic):
            key = (message.key or b"").decode("utf-8", "replace")
            for rid in lost:
                if rid in key:
                    seen[rid].append(f"{short}[{message.partition}]@{message.offset}")
                    if topic == names.requests:
                        home.setdefault(rid, TopicPartition(topic, message.partition))
    committed: dict[str, dict[TopicPartition, int]] = {}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        for group in (settings.app_id, f"{settings.app_id}-watchdog"):
            with contextlib.suppress(Exception):
                offsets = await admin.list_consumer_group_offsets(group)
                committed[group] = {tp: meta.offset for tp, meta in offsets.items()}
    finally:
        await admin.close()
    lines = []
    for rid in lost:
        tp = home.get(rid)
        marks = ", ".join(
            f"{group} committed {offsets.get(tp)}" for group, offsets in committed.items()
        )
        lines.append(f"  {rid}: {' '.join(seen[rid]) or 'nowhere'}; {marks}")
    return lines


def delivered_hooks(env: Env, since: int) -> set[str]:
    return {
        seen.headers.get("webhook-id", "")
        for seen in env.receiver.received[since:]
        if 200 <= seen.status < 300
    }


def hooks_pending(env: Env, traffic: Traffic, since: int) -> int:
    """Webhooks of the completions seen so far not yet answered 2xx (a progress check)."""
    return len(traffic.hooks - delivered_hooks(env, since))


async def check_topics(
    settings: Settings, traffic: Traffic, env: Env, received_before: int
) -> dict[str, Any]:
    """Lost, doubled, dead-lettered and undelivered webhooks, from the topics alone."""
    names = TopicNames.with_prefix(settings.topic_prefix)
    codecs = Codecs.load()
    bootstrap = settings.kafka_bootstrap
    notes: list[str] = []
    per_generation: Counter[tuple[str, int]] = Counter()
    for message in await read_to_end(bootstrap, names.completed):
        if message.value is None:
            continue
        try:
            done = codecs.completed.decode(message.value)
        except CodecError as exc:
            notes.append(f"undecodable completion: {exc}")
            continue
        per_generation[(done.request_id, generation_of(done.attempt))] += 1
    ids = {r.request_id for r in traffic.requests}
    lost = sorted(rid for rid in ids if per_generation[(rid, 0)] == 0)
    doubled = sum(count - 1 for (rid, _), count in per_generation.items() if rid in ids)
    if lost:
        where = {
            (m.key or b"").decode("utf-8", "replace"): m.partition
            for m in await read_to_end(bootstrap, names.requests)
        }
        parts = sorted({where.get(rid, -1) for rid in lost})
        notes.append(f"lost on .requests partition(s) {parts}: {lost[:10]}")
        notes.extend(await trace_lost(settings, lost[:10]))

    poison_keys = {p.key for p in traffic.poison}
    dead: set[str] = set()
    for message in await read_to_end(bootstrap, names.deadletter):
        key = (message.key or b"").decode("utf-8", "replace")
        headers = header_map(message.headers)
        coded = headers.get("assetline.dlq.error.code") and headers.get(
            "assetline.dlq.error.reason"
        )
        if key in poison_keys and coded:
            dead.add(key)
    missing_poison = sorted(poison_keys - dead)
    if missing_poison:
        kinds = {p.key: p.kind for p in traffic.poison}
        notes.append(f"poison not dead-lettered: {[(k, kinds[k]) for k in missing_poison[:10]]}")

    queued: set[str] = set()
    for message in await read_to_end(bootstrap, names.webhooks):
        if message.value is None:
            continue
        with contextlib.suppress(CodecError):
            queued.add(codecs.webhook_job.decode(message.value).webhook_id)
    undelivered = queued - delivered_hooks(env, received_before)
    if undelivered:
        notes.append(f"{len(undelivered)} webhook ids never answered 2xx")
    return {
        "lost": len(lost),
        "doubled": doubled,
        "dead_lettered": len(dead),
        "hooks_missing": len(undelivered),
        "notes": notes,
    }


# -- the suite -------------------------------------------------------------------------------


COLUMNS = (
    ("scenario", "scenario"),
    ("requests", "requests"),
    ("kills", "kills"),
    ("lost", "lost"),
    ("doubled", "doubled"),
    ("paid twice", "paid_twice"),
    ("answered unrecorded", "unrecorded_repeats"),
    ("dead-lettered", "dead_lettered"),
    ("poison", "poison"),
    ("hooks missing", "hooks_missing"),
    ("recovery s", "recovery_s"),
    ("self-exits", "self_exits"),
    ("calls", "provider_calls"),
    ("wall s", "wall_s"),
)


def table(results: list[Result]) -> str:
    rows = [[str(getattr(r, attr)) for _, attr in COLUMNS] + [str(r.ok)] for r in results]
    heads = [head for head, _ in COLUMNS] + ["ok"]
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(heads)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(lines)


async def run_suite(env: Env, scenarios: list[str]) -> list[Result]:
    results = []
    for scenario in scenarios:
        env.log(f"{scenario} ({env.profile.name})")
        results.append(await run_scenario(env, scenario))
    return results
