"""Benchmark campaign fan-out on a real broker: expansion time and submit throughput.

    python -m bench.campaign [--n 10000] [--with-worker] [--partitions 6]

Expands a template x N generated segment rows (half copy, a sixth 256x256 images), then submits
them with :class:`LineClient` to a fresh topic prefix on KAFKA_BOOTSTRAP (else 127.0.0.1:9092).
With --with-worker, a worker (offline provider) is started first and the bench also measures
the time from the first send until all N completions are on ``.completed``.
Prints a table and writes bench/results/campaign.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from assetline.campaign import CampaignSummary, Segment, expand
from assetline.client import LineClient, open_completion_reader
from assetline.dev.child_worker import WorkerProcess
from streams.codecs import CodecError, Codecs
from streams.settings import Settings
from streams.topics import ensure_topics, line_topic_specs

TEMPLATE: dict[str, Any] = {
    "tenant": "bench",
    "campaign_id": "bench-campaign",
    "kind": "TEXT",
    "prompt_template": "Write a short headline for ${persona} in ${locale} about ${product}",
    "variables": {"product": "the Aurora water bottle"},
    "constraints": {"max_chars": 280, "language": "${locale}"},
    "metadata": {"persona": "${persona}", "segment": "${segment}"},
}
LOCALES = ("en-GB", "de-DE", "fr-FR", "es-ES")


def segments(n: int) -> list[Segment]:
    rows = []
    for i in range(n):
        values = {"persona": f"persona {i}", "locale": LOCALES[i % 4], "segment": f"s{i % 50}"}
        if i % 6 == 0:
            values |= {
                "@kind": "IMAGE",
                "@constraints.width": "256",
                "@constraints.height": "256",
                "@constraints.format": "png",
            }
        rows.append(Segment(i + 2, values))
    return rows


async def track(settings: Settings, summary: CampaignSummary, timeout: float) -> float:
    codecs = Codecs.load()
    consumer = await open_completion_reader(settings)
    started = time.perf_counter()
    try:
        while not summary.complete and time.perf_counter() - started < timeout:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                for message in messages:
                    try:
                        summary.add(codecs.completed.decode(message.value))
                    except CodecError:
                        continue
    finally:
        await consumer.stop()
    return time.perf_counter() - started


async def run(args: argparse.Namespace, bootstrap: str, root: Path) -> dict[str, object]:
    uid = uuid.uuid4().hex[:10]
    settings = Settings(
        kafka_bootstrap=bootstrap,
        app_id=f"bench-campaign-{uid}",
        topic_prefix=f"bench-campaign-{uid}",
        topic_partitions=args.partitions,
        blob_dir=root / "blobs",
        delivery_dir=root / "delivery",
        data_dir=root / "worker",
        web_port=0,
    )
    await ensure_topics(bootstrap, line_topic_specs(settings))
    rows = segments(args.n)
    started = time.perf_counter()
    campaign = expand({**TEMPLATE, "campaign_id": f"bench-{uid}"}, rows)
    expand_s = time.perf_counter() - started
    worker = None
    if args.with_worker:
        worker = WorkerProcess(settings, root / "worker.log").start()
    try:
        summary = CampaignSummary(campaign.request_ids)
        tracker = asyncio.create_task(track(settings, summary, args.timeout)) if worker else None
        async with LineClient(settings) as client:
            started = time.perf_counter()
            sent = await client.submit(campaign.requests)
            submit_s = time.perf_counter() - started
        result: dict[str, object] = {
            "requests": sent,
            "expand_s": round(expand_s, 3),
            "expand_per_s": round(args.n / expand_s),
            "submit_s": round(submit_s, 3),
            "submit_per_s": round(sent / submit_s),
            "cpus": os.cpu_count(),
        }
        if tracker is not None:
            end_to_end = await tracker
            result |= {
                "completed": summary.done,
                "end_to_end_s": round(end_to_end, 1),
                "completions_per_s": round(summary.done / end_to_end, 1),
                "by_status": {k: v for k, v in summary.by_status().items() if v},
            }
        return result
    finally:
        if worker is not None:
            worker.stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--with-worker", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800.0, help="End-to-end limit (s).")
    parser.add_argument("--json", type=Path, default=Path("bench/results/campaign.json"))
    args = parser.parse_args()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    root = Path(tempfile.mkdtemp(prefix="assetline-bench-campaign-"))
    result = asyncio.run(run(args, bootstrap, root))
    width = max(len(k) for k in result)
    print(f"{'metric'.ljust(width)}  value")
    print(f"{'-' * width}  -----")
    for key, value in result.items():
        print(f"{key.ljust(width)}  {value}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
