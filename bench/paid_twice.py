"""Paid twice after a crash: provider calls repeated when a worker is ``kill -9``'d mid-run.

    python -m bench.paid_twice [--n 1500] [--concurrency 128] [--kill-after 500]
                               [--kill-on raw|completed] [--latency 2.0] [--modes off,on]

Per mode (``generation_reuse`` off = the line before finished generations were recorded, on =
now), on fresh topics of a real broker (``KAFKA_BOOTSTRAP``, else a local KRaft broker): a local
OpenAI-shaped provider (tests.support.provider_server) answers every /chat/completions call
after ``--latency`` s and logs (arrival time, request id) itself; one worker
(generate_concurrency ``--concurrency``) gets N text requests naming their id in the prompt; after
``--kill-after`` finished generations (records on ``.raw``; ``--kill-on completed`` counts
completions instead, which on a busy machine can lag so far behind that nothing is in flight
any more) the worker is ``kill -9``'d, a new one started, and every completion awaited (then
5 s more, to catch doubles). From the provider's log:

  repeated      request ids the provider was called for more than once;
  in flight     calls received at most ``--latency`` s before the kill (unanswered when it fell);
  answered+rep  repeated ids whose first call the provider had answered before the kill;
  unrecorded    (reuse on) calls answered before the kill whose generation was not recorded
                before it (from the ``.generations`` timestamps): the worker had not read the
                answer, or not had the record acknowledged: still in flight for the line;
  recorded+rep  (reuse on) repeated ids recorded before the kill: finished calls paid twice;
  unrec. max s  (reuse on) how long before the kill the oldest unrecorded answer was sent.

Target: repeated <= calls unfinished at the kill (in flight + unrecorded), recorded+rep = 0,
0 lost and 0 duplicate completions. Also measured from the ``.generations`` topic: bytes per
record, and the memory 10,000 records take in a worker. One machine clock for all timestamps.
Prints a table and writes bench/results/paid_twice.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import sys
import tempfile
import threading
import time
import tracemalloc
import uuid
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from agents.inference.paid_once import recorded_at_ms
from assetline.client import LineClient, await_completions, open_completion_reader
from assetline.dev.broker import LocalBroker, free_ports
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetCompleted, AssetKind, Constraints, GenerationRequest, utc_now
from streams.kafka import open_topic_reader, read_to_end
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs
from tests.support.provider_server import (
    ProviderServer,
    Reply,
    local_routing_file,
    openai_chat_response,
)

CHAT = "/chat/completions"
RID_MARK = "rid="


class CallLog:
    """The provider's own log: (monotonic arrival, request id) of every call, in order."""

    def __init__(self, latency_s: float) -> None:
        self.latency_s = latency_s
        self._lock = threading.Lock()
        self.calls: list[tuple[float, str]] = []

    def handler(self, body: Any) -> Reply:
        text = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        rid = text.split(RID_MARK, 1)[1].split()[0] if RID_MARK in text else "?"
        with self._lock:
            self.calls.append((time.time(), rid))
        reply = openai_chat_response(f"Made for {rid}.", model=body["model"])
        return Reply(json=reply, delay_s=self.latency_s)

    def snapshot(self) -> list[tuple[float, str]]:
        with self._lock:
            return list(self.calls)


def routing_file(path: Path, base_url: str) -> Path:
    """One OpenAI-shaped provider, no retries, a rung timeout far above its latency."""
    return local_routing_file(path, base_url, model="bench-model", timeout_s=60, max_retries=0)


def requests_for(run: str, n: int) -> list[GenerationRequest]:
    now = utc_now()
    return [
        GenerationRequest(
            request_id=f"{run}-{i:05d}",
            idempotency_key=f"{run}-{i:05d}",
            tenant="bench",
            campaign_id=run,
            kind=AssetKind.TEXT,
            prompt_template=f"Copy for ${{persona}} {RID_MARK}{run}-{i:05d} please",
            variables={"persona": f"p{i % 97}"},
            constraints=Constraints(max_chars=280),
            created_at=now,
        )
        for i in range(n)
    ]


@dataclass
class Trial:
    mode: str
    requests: int
    concurrency: int
    latency_s: float
    kill_on: str
    done_before_kill: int
    provider_calls: int
    repeated: int
    in_flight_at_kill: int
    answered_then_repeated: int
    answered_unrecorded: int | None
    recorded_then_repeated: int | None
    unrecorded_max_s: float | None
    lost: int
    doubled: int
    reused_headers: int
    recovery_s: float
    records: int
    record_bytes_mean: float
    memory_per_10k_mib: float

    @property
    def ok(self) -> bool:
        unfinished = self.in_flight_at_kill + (self.answered_unrecorded or 0)
        return (
            self.repeated <= unfinished
            and not self.recorded_then_repeated
            and self.lost == 0
            and self.doubled == 0
        )


def memory_per_10k_mib(records: list[tuple[bytes, bytes]]) -> float:
    """What 10,000 records like these take in a dict (the in-memory table store), in MiB."""
    if not records:
        return 0.0
    sample = [records[i % len(records)] for i in range(10_000)]
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    # bytes(bytearray(...)): a copy per entry, as the store holds one object per record
    store = {k + str(i).encode(): bytes(bytearray(v)) for i, (k, v) in enumerate(sample)}
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    used = sum(s.size_diff for s in after.compare_to(before, "filename"))
    del store
    return used / (1024 * 1024)


async def count_completions(
    settings: Settings, ids: list[str], seen: dict[str, list[AssetCompleted]], reader: Any, s: float
) -> None:
    """Read ``.completed`` for ``s`` seconds more, adding to ``seen``."""

    def add(done: AssetCompleted) -> None:
        seen.setdefault(done.request_id, []).append(done)

    await await_completions(settings, ids, timeout=s, consumer=reader, on_completion=add)


async def trial(
    mode: str, bootstrap: str, root: Path, provider: ProviderServer, args: argparse.Namespace
) -> Trial:
    uid = uuid.uuid4().hex[:8]
    calls = CallLog(args.latency)
    provider.reset()
    provider.handle("POST", CHAT, calls.handler)
    settings = Settings(
        kafka_bootstrap=bootstrap,
        app_id=f"paid-{mode}-{uid}",
        topic_prefix=f"paid-{mode}-{uid}",
        topic_partitions=args.partitions,
        blob_dir=root / uid / "blobs",
        delivery_dir=root / uid / "delivery",
        data_dir=root / uid / "worker",
        web_port=0,
        generate_concurrency=args.concurrency,
        routing_file=routing_file(root / f"routing-{uid}.yaml", provider.url),
        generation_reuse=mode == "on",
    )
    await ensure_topics(bootstrap, line_topic_specs(settings))
    requests = requests_for(f"paid-{uid}", args.n)
    ids = [r.request_id for r in requests]
    seen: dict[str, list[AssetCompleted]] = {}
    reader = await open_completion_reader(settings)
    names = TopicNames.with_prefix(settings.topic_prefix)
    trigger = await open_topic_reader(bootstrap, names.raw) if args.kill_on == "raw" else None
    generated: set[bytes | None] = set()
    logs = root / "logs"
    first = WorkerProcess(settings, logs / f"{settings.app_id}-0.log").start()
    second: WorkerProcess | None = None
    try:
        async with LineClient(settings) as client:
            await client.submit(requests)
        deadline = time.monotonic() + 300
        while (before_kill := len(generated if trigger else seen)) < args.kill_after:
            if time.monotonic() > deadline or not first.alive():
                raise SystemExit(f"{mode}: {before_kill} {args.kill_on} before the kill\n"
                                 + first.log_tail())  # fmt: skip
            if trigger is None:
                await count_completions(settings, ids, seen, reader, 0.2)
                continue
            for records in (await trigger.getmany(timeout_ms=200)).values():
                generated.update(r.key for r in records)
        first.kill()
        killed_at = time.time()
        second = WorkerProcess(settings, logs / f"{settings.app_id}-1.log").start()
        deadline = time.monotonic() + 300
        while len(seen) < len(ids) and time.monotonic() < deadline:
            await count_completions(settings, ids, seen, reader, 1.0)
        recovery_s = time.time() - killed_at
        await count_completions(settings, ids, seen, reader, 5.0)  # doubles arrive late
    finally:
        await reader.stop()
        if trigger is not None:
            await trigger.stop()
        if second is not None:
            second.stop()
        first.stop()
    log = calls.snapshot()
    per_id = Counter(rid for _, rid in log)
    repeated = {rid for rid, count in per_id.items() if count > 1}
    first_call: dict[str, float] = {}
    for at, rid in log:
        first_call.setdefault(rid, at)
    in_flight = sum(1 for at, _ in log if killed_at - args.latency < at <= killed_at)
    answered = {rid for rid, at in first_call.items() if at + args.latency <= killed_at}
    raw = await read_to_end(bootstrap, names.raw)
    reused = sum(
        1
        for message in raw
        if any(k == "assetline.generation.reused" for k, _ in (message.headers or ()))
    )
    records = [
        (m.key or b"", m.value or b"") for m in await read_to_end(bootstrap, names.generations)
    ]
    mean = sum(len(k) + len(v) for k, v in records) / len(records) if records else 0.0
    recorded_at: dict[str, float] = {}
    for key, value in records:
        rid = key.decode().rsplit("|", 1)[0]
        stamp = recorded_at_ms(value)
        if stamp is not None:
            recorded_at[rid] = min(recorded_at.get(rid, stamp / 1000), stamp / 1000)
    recorded = {rid for rid, when in recorded_at.items() if when <= killed_at}
    reuse = mode == "on"
    lags = [killed_at - (first_call[rid] + args.latency) for rid in answered - recorded]
    return Trial(
        mode=mode,
        requests=args.n,
        concurrency=args.concurrency,
        latency_s=args.latency,
        kill_on=args.kill_on,
        done_before_kill=before_kill,
        provider_calls=len(log),
        repeated=len(repeated),
        in_flight_at_kill=in_flight,
        answered_then_repeated=len(repeated & answered),
        answered_unrecorded=len(answered - recorded) if reuse else None,
        recorded_then_repeated=len(repeated & recorded) if reuse else None,
        unrecorded_max_s=round(max(lags), 2) if reuse and lags else None,
        lost=len(ids) - len(seen),
        doubled=sum(len(v) - 1 for v in seen.values()),
        reused_headers=reused,
        recovery_s=round(recovery_s, 1),
        records=len(records),
        record_bytes_mean=round(mean, 1),
        memory_per_10k_mib=round(memory_per_10k_mib(records), 2),
    )


COLUMNS = (
    ("mode", "mode"),
    ("requests", "requests"),
    ("kill on", "kill_on"),
    ("killed after", "done_before_kill"),
    ("calls", "provider_calls"),
    ("repeated", "repeated"),
    ("in flight", "in_flight_at_kill"),
    ("answered+rep", "answered_then_repeated"),
    ("unrecorded", "answered_unrecorded"),
    ("recorded+rep", "recorded_then_repeated"),
    ("unrec. max s", "unrecorded_max_s"),
    ("lost", "lost"),
    ("doubled", "doubled"),
    ("reused", "reused_headers"),
    ("recovery s", "recovery_s"),
    ("record B", "record_bytes_mean"),
    ("MiB/10k", "memory_per_10k_mib"),
)


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def print_table(trials: list[Trial]) -> None:
    rows = [[_cell(getattr(t, attr)) for _, attr in COLUMNS] + [str(t.ok)] for t in trials]
    heads = [head for head, _ in COLUMNS] + ["ok"]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(heads)]
    print("  ".join(h.ljust(w) for h, w in zip(heads, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=1500)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--kill-after", type=int, default=500)
    parser.add_argument("--kill-on", choices=("raw", "completed"), default="raw")
    parser.add_argument("--latency", type=float, default=2.0)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--modes", default="off,on", help="generation_reuse off, on, or both")
    parser.add_argument("--json", type=Path, default=Path("bench/results/paid_twice.json"))
    args = parser.parse_args()
    # The kill cuts connections the provider is still answering, and fresh topics have no
    # leader for a moment: both are expected here, not worth a traceback each.
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)
    logging.getLogger("aiokafka.consumer.fetcher").setLevel(logging.CRITICAL)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not set(modes) <= {"off", "on"}:
        raise SystemExit("--modes takes off and/or on")
    root = Path(tempfile.mkdtemp(prefix="assetline-paid-twice-"))
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    broker = None
    if not bootstrap:
        port, ctrl = free_ports(2)
        broker = LocalBroker(root / "kafka", port=port, controller_port=ctrl)
        bootstrap = broker.up(timeout=120)
    provider = ProviderServer().start()
    trials: list[Trial] = []
    try:
        for mode in modes:
            trials.append(asyncio.run(trial(mode, bootstrap, root, provider, args)))
    finally:
        provider.stop()
        if broker is not None:
            broker.down()
    print_table(trials)
    result = {
        "command": " ".join(["python -m bench.paid_twice", *sys.argv[1:]]),
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "trials": [{**asdict(t), "ok": t.ok} for t in trials],
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
