"""Start-up time of the deliver stage with a long completion history (issue 14, part 4).

    python -m bench.ledger_startup [--n 1000000] [--partitions 6] [--store rocksdb|memory]

Produces N past completions straight into ``.completed`` of a fresh line (encoded records in
batches with aiokafka, not through the line), then starts a deliver-only worker and measures
the seconds from process start until it completes a new request (a rejected event written to
``.rejected`` before the worker starts): the ledger's recovery has to finish first, since
Faust holds the source partitions until then. Phases: ``empty`` (a line without history, the
fixed cost of starting a worker), ``cold`` (N past completions, empty local state), ``warm``
(the same worker restarted on its data dir). Prints a table and writes
bench/results/ledger_startup[-<store>].json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from aiokafka import AIOKafkaProducer

from assetline.client import await_completions, open_completion_reader
from assetline.dev.broker import LocalBroker, free_ports
from assetline.dev.child_worker import WorkerProcess
from bench.line import rss_peak_mib, settings_for
from schemas.records import (
    AssetKind,
    BlobRef,
    CheckResult,
    Disposition,
    GenerationRequest,
    RawAsset,
    ValidatedAsset,
    ValidationReport,
    Verdict,
)
from streams.codecs import Codecs
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs
from tests.support.ledger import past_completion

CODECS = Codecs.load()


@dataclass
class Row:
    phase: str
    past_completions: int
    startup_s: float | None  # None: not ready within --timeout
    rss_peak_mib: float


async def produce_history(settings: Settings, n: int) -> float:
    """N completions into ``.completed``, keyed by request id like the ledger's own writes."""
    topic = TopicNames.with_prefix(settings.topic_prefix).completed
    run = uuid.uuid4().hex[:6]
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        linger_ms=20,
        max_batch_size=1 << 20,
        acks=1,
    )
    await producer.start()
    start = time.perf_counter()
    try:
        pending = []
        for i in range(n):
            done = past_completion(i, run)
            pending.append(
                await producer.send(
                    topic, key=done.request_id.encode(), value=CODECS.completed.encode(done)
                )
            )
            if len(pending) >= 20_000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - start


def probe_event(run: str) -> tuple[str, bytes]:
    """A final rejection: deliver completes it REJECTED without touching a sink."""
    rid = f"probe-{run}"
    digest = "0" * 64
    raw = RawAsset(
        request=GenerationRequest(
            request_id=rid,
            idempotency_key=rid,
            tenant="acme",
            campaign_id="probe",
            kind=AssetKind.TEXT,
            prompt_template="probe",
        ),
        blob=BlobRef(uri=f"file:///b/{digest}", sha256=digest, size=1, media_type="text/plain"),
        provider="offline",
        model_version="offline-1",
        latency_ms=1.0,
    )
    report = ValidationReport(
        verdict=Verdict.FAIL,
        checks=[CheckResult(code="probe", passed=False, message="probe", repairable=False)],
    )
    validated = ValidatedAsset(raw=raw, report=report, disposition=Disposition.REJECTED)
    return rid, CODECS.validated.encode(validated)


async def start_and_probe(settings: Settings, log: Path, timeout: float) -> Row:
    """Seconds from starting a worker until it completes a request written just before."""
    run = uuid.uuid4().hex[:8]
    rid, value = probe_event(run)
    reader = await open_completion_reader(settings)
    await reader.seek_to_end(*reader.assignment())
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap)
    await producer.start()
    try:
        topic = TopicNames.with_prefix(settings.topic_prefix).rejected
        await producer.send_and_wait(topic, key=rid.encode(), value=value)
    finally:
        await producer.stop()
    start = time.perf_counter()
    worker = WorkerProcess(settings, log).start()
    try:
        got = await await_completions(settings, [rid], timeout=timeout, consumer=reader)
        seconds: float | None = round(time.perf_counter() - start, 2)
        if rid not in got:
            print(f"no completion within {timeout}s (recorded as null); log tail:")
            print(worker.log_tail(5))
            seconds = None
        return Row("", 0, seconds, round(rss_peak_mib(worker.pid), 1))
    finally:
        await reader.stop()
        worker.stop()


def line_settings(bootstrap: str, root: Path, partitions: int, store: str | None) -> Settings:
    settings = settings_for(bootstrap, root, partitions).model_copy(update={"stages": ("deliver",)})
    if store is not None:
        settings = settings.model_copy(update={"ledger_store": store})
    return settings


async def main_async(args: argparse.Namespace, bootstrap: str, root: Path) -> dict[str, object]:
    rows: list[Row] = []
    empty = line_settings(bootstrap, root, args.partitions, args.store)
    await ensure_topics(empty.kafka_bootstrap, line_topic_specs(empty))
    row = await start_and_probe(empty, root / "logs" / "empty.log", args.timeout)
    rows.append(Row("empty", 0, row.startup_s, row.rss_peak_mib))
    print(f"empty line: {row.startup_s} s")

    settings = line_settings(bootstrap, root, args.partitions, args.store)
    await ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings))
    produce_s = await produce_history(settings, args.n)
    print(f"produced {args.n} completions in {produce_s:.1f} s")
    row = await start_and_probe(settings, root / "logs" / "cold.log", args.timeout)
    rows.append(Row("cold", args.n, row.startup_s, row.rss_peak_mib))
    print(f"cold start: {row.startup_s} s")
    row = await start_and_probe(settings, root / "logs" / "warm.log", args.timeout)
    rows.append(Row("warm", args.n, row.startup_s, row.rss_peak_mib))
    print(f"warm restart: {row.startup_s} s")
    return {
        "store": args.store or "default",
        "partitions": args.partitions,
        "produce_s": round(produce_s, 1),
        "cpus": os.cpu_count(),
        "rows": [asdict(r) for r in rows],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--store", choices=("rocksdb", "memory"), default=None, help="ASSETLINE_LEDGER_STORE"
    )
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    suffix = f"-{args.store}" if args.store else ""
    out = args.json or Path(f"bench/results/ledger_startup{suffix}.json")
    root = Path(tempfile.mkdtemp(prefix="assetline-ledger-"))
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    broker = None
    if not bootstrap:
        port, ctrl = free_ports(2)
        broker = LocalBroker(root / "kafka", port=port, controller_port=ctrl, heap="1g")
        bootstrap = broker.up(timeout=120)
    try:
        result = asyncio.run(main_async(args, bootstrap, root))
    finally:
        if broker is not None:
            broker.down()
    print(f"\n{'phase':<6}  {'past completions':>16}  {'start-up s':>10}  {'peak RSS MiB':>12}")
    for row in result["rows"]:  # type: ignore[attr-defined]
        print(
            f"{row['phase']:<6}  {row['past_completions']:>16,}  {row['startup_s']:>10}  "
            f"{row['rss_peak_mib']:>12}"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
