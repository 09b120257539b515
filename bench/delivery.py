"""Delivery throughput per destination: label + write, one asset at a time, in one process.

    python -m bench.delivery [--n 300]

Each destination gets the same N approved assets (512x512 PNGs from the offline renderer,
labelled with provenance on the way): the filesystem, an S3-compatible store (moto's server on
127.0.0.1), and an HTTP DAM (an aiohttp receiver on 127.0.0.1). Sequential, like the deliver
agent; a real network adds its round trip per asset. Prints a table.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import botocore.session
import httpx
from moto.server import ThreadedMotoServer
from pydantic import SecretStr

from agents.deliver.deliver_one import deliver_approved
from agents.deliver.provenance import Labeller
from agents.deliver.sinks import FilesystemSink, Sink
from agents.deliver.sinks.http import HttpSink, HttpSinkConfig
from agents.deliver.sinks.s3 import S3Config, S3Sink
from agents.inference.prompt import render_prompt
from agents.inference.providers.base import ProviderCall
from agents.inference.providers.offline import OfflineProvider
from agents.policy import ProfileBook
from assetline.dev.broker import free_port
from schemas.records import (
    AssetKind,
    CompletionStatus,
    Constraints,
    GenerationRequest,
    RawAsset,
    ValidatedAsset,
    ValidationReport,
    Verdict,
)
from streams.blobs import LocalBlobStore
from tests.support.provider_server import Reply, provider_server


def assets(n: int, blobs: LocalBlobStore) -> list[ValidatedAsset]:
    provider = OfflineProvider()
    out = []
    for i in range(n):
        request = GenerationRequest(
            request_id=f"bench-{i:05d}", idempotency_key=f"k{i}", tenant="bench",
            campaign_id="delivery", kind=AssetKind.IMAGE, prompt_template="Hero ${p}",
            variables={"p": str(i)}, constraints=Constraints(width=512, height=512, format="png"),
        )  # fmt: skip
        made = asyncio.run(
            provider.generate(ProviderCall(request, render_prompt(request), "offline"))
        )
        blob = blobs.put(made.data, made.media_type)
        raw = RawAsset(request=request, blob=blob, provider="offline", model_version="offline-1",
                       latency_ms=1.0)  # fmt: skip
        out.append(ValidatedAsset(raw=raw, report=ValidationReport(verdict=Verdict.PASS)))
    return out


def run(
    name: str, sink: Sink, batch: list[ValidatedAsset], blobs: LocalBlobStore
) -> dict[str, Any]:
    label = Labeller(ProfileBook())
    times = []

    async def go() -> None:
        for asset in batch:
            start = time.perf_counter()
            done = await deliver_approved(asset, blobs, sink, label)
            times.append((time.perf_counter() - start) * 1000.0)
            assert done.status is CompletionStatus.DELIVERED, done.reasons

    started = time.perf_counter()
    asyncio.run(go())
    seconds = time.perf_counter() - started
    times.sort()
    p95 = times[int(0.95 * (len(times) - 1))]
    return {"destination": name, "assets": len(batch), "assets_per_s": len(batch) / seconds,
            "p50_ms": statistics.median(times), "p95_ms": p95}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="assetline-delivery-"))
    blobs = LocalBlobStore(root / "blobs")
    batch = assets(args.n, blobs)
    rows = [run("filesystem", FilesystemSink(root / "out"), batch, blobs)]

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        botocore.session.get_session().create_client(
            "s3", region_name="us-east-1", endpoint_url=endpoint,
            aws_access_key_id="AKIABENCH", aws_secret_access_key="bench",
        ).create_bucket(Bucket="bench")  # fmt: skip
        config = S3Config(endpoint_url=endpoint, bucket="bench", access_key_id="AKIABENCH",
                          secret_access_key=SecretStr("bench"))  # fmt: skip
        rows.append(run("s3 (moto, 127.0.0.1)", S3Sink(config, httpx.AsyncClient()), batch, blobs))
    finally:
        server.stop()

    with provider_server() as receiver:
        receiver.handle("PUT", "/dam", lambda body: Reply(status=201))
        config_http = HttpSinkConfig(url=receiver.url + "/dam")  # one path: the server is simple
        sink = HttpSink(config_http, httpx.AsyncClient())
        rows.append(run("http (aiohttp, 127.0.0.1)", sink, batch, blobs))

    header = ("destination", "assets", "assets/s", "p50 ms", "p95 ms")
    lines = [header] + [
        (
            r["destination"],
            str(r["assets"]),
            f"{r['assets_per_s']:.0f}",
            f"{r['p50_ms']:.2f}",
            f"{r['p95_ms']:.2f}",
        )
        for r in rows
    ]
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    for index, line in enumerate(lines):
        print("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
        if index == 0:
            print("  ".join("-" * w for w in widths))


if __name__ == "__main__":
    main()
