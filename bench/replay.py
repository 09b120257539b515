"""Benchmark ``assetline replay``: republish 10,000 ``.requests`` events on a real broker.

    python -m bench.replay [--n 10000] [--partitions 6]

Seeds N requests into a fresh uuid-named ``<prefix>.requests`` (KAFKA_BOOTSTRAP or
127.0.0.1:9092), then replays the whole range into a fresh target topic as new attempts, timing
the copy only (resolve + read + decode + bump + encode + produce + acks). Target: <= 10 s for
10,000 events. The topics are deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from agents.tenants import DEVELOPMENT_LINE_SECRET, Gatekeeper
from assetline.client import LineClient
from assetline.replay.ranges import OffsetBound, resolve
from assetline.replay.republish import republish
from assetline.replay.rewrite import RecordKind, Rewriter
from schemas.records import AssetKind, Constraints, GenerationRequest
from streams.codecs import Codecs
from streams.kafka import open_topic_reader, partitions_of
from streams.settings import Settings
from streams.topics import TopicNames, TopicSpec, ensure_topics


def _requests(run: str, n: int) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            request_id=f"{run}-{i:06d}",
            idempotency_key=f"{run}-{i:06d}",
            tenant="bench",
            campaign_id=run,
            kind=AssetKind.TEXT,
            prompt_template="Copy for ${persona} in ${locale}",
            variables={"persona": f"p{i % 97}", "locale": "en-GB"},
            constraints=Constraints(max_chars=280),
        )
        for i in range(n)
    ]


async def _check_landed(bootstrap: str, target: str, n: int) -> None:
    """The target holds N records, and the first fetched ones are new attempts."""
    consumer = await open_topic_reader(bootstrap, target)
    try:
        ends = await consumer.end_offsets(list(consumer.assignment()))
        batch = await consumer.getmany(timeout_ms=5000, max_records=500)
        codec = Codecs.load().request
        attempts = {codec.decode(m.value or b"").attempt for ms in batch.values() for m in ms}
    finally:
        await consumer.stop()
    if sum(ends.values()) != n or attempts != {1001}:
        raise SystemExit(f"target holds {sum(ends.values())} records, attempts {attempts}")


async def bench(bootstrap: str, n: int, partitions: int) -> tuple[int, float, int]:
    run = uuid.uuid4().hex[:8]
    settings = Settings(kafka_bootstrap=bootstrap, topic_prefix=f"bench-replay-{run}")
    names = TopicNames.with_prefix(settings.topic_prefix)
    target = f"{names.requests}.replayed"
    specs = [TopicSpec(t, partitions, 1) for t in (names.requests, target)]
    await ensure_topics(bootstrap, specs)
    try:
        async with LineClient(settings) as client:
            await client.submit(_requests(run, n))
        started = time.perf_counter()
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            parts = await partitions_of(consumer, names.requests)
            ranges = await resolve(consumer, names.requests, parts, OffsetBound(0), None)
        finally:
            await consumer.stop()
        report = await republish(
            bootstrap,
            names.requests,
            RecordKind.REQUEST,
            ranges,
            target,
            Rewriter(Codecs.load()),
            marker=Gatekeeper(DEVELOPMENT_LINE_SECRET),  # as the CLI does: check, then mark
        )
        seconds = time.perf_counter() - started
        await _check_landed(bootstrap, target, n)
        return report.total().written, seconds, report.total().undecodable
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([names.requests, target])
        finally:
            await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    written, seconds, undecodable = asyncio.run(bench(bootstrap, args.n, args.partitions))
    rows = [
        ("events", "seconds", "events/s", "target"),
        (str(written), f"{seconds:.2f}", f"{written / seconds:,.0f}", "<= 10 s"),
    ]
    for row in rows:
        print("  ".join(cell.rjust(10) for cell in row))
    if written != args.n or undecodable:
        raise SystemExit(f"expected {args.n} replayed, got {written} ({undecodable} undecodable)")


if __name__ == "__main__":
    main()
