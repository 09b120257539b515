"""Benchmark the policy dry run's offline suite: assets per second, blob reads included.

    python -m bench.policy_check [--assets 4000] [--workers N]

Makes 64 distinct offline images (512x512 PNG, the offline renderer's) and 64 offline copies,
stores them in a real LocalBlobStore (no in-memory cache: every asset is read from disk and
its hash checked), encodes ``assets`` RawAsset records cycling over them (half images, half
text, 1 in 10 naming a term the strict profile now bans), then times what ``assetline policy
check --topic raw`` does after reading Kafka: decode the records, resolve each policy, read
the blob, run the suite (image rules, palette, text rules: no judge) in the process pool.
Pool start-up is excluded (paid once per run, ~1 s). The range is checked ``--repeats`` times
(the machine is shared: each run's load average is recorded, and its CPU milliseconds per asset,
this process's and the pool's, which the load does not change much). Records are decoded a
chunk at a time, as the CLI decodes a fetched batch. Writes bench/results/policy_check.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from agents.inference.prompt import render_prompt
from agents.inference.providers.base import ProviderCall
from agents.inference.providers.offline import OfflineProvider
from assetline.policy_check.report import build_report
from assetline.policy_check.run import (
    CHUNK,
    SuitePool,
    check_assets,
    default_workers,
    load_dry_run_policies,
)
from assetline.policy_check.sources import raw_assets
from schemas.records import AssetKind, BlobRef, Constraints, GenerationRequest, RawAsset
from streams.blobs import LocalBlobStore
from streams.codecs import Codecs

PROFILE = {
    "id": "bench",
    "image": {
        "formats": ["png"],
        "min_width": 256,
        "min_height": 256,
        "max_bytes": 4_000_000,
        "color_modes": ["RGB", "RGBA", "P"],
        "transparency": "forbid",
        "aspect_ratio": "1:1",
    },
    "palette": {
        "colors": ["#f5f5eb", "#fae65a", "#339c71", "#1e3541"],
        "max_delta_e": 12,
        "min_share": 0.0,
    },
    "text": {
        "prohibited": ["guaranteed", "miracle", "risk-free", "cheapest", "act now"],
        "max_chars": 2000,
        "language": "en",
    },
}
DISTINCT = 64


def _cpu_seconds() -> float:
    """CPU time of this process and its live children (the pool), so a run's cost per asset
    can be compared across runs whatever else the shared machine is doing."""
    total = time.process_time()
    tick = os.sysconf("SC_CLK_TCK")
    for child in multiprocessing.active_children():
        try:
            fields = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return total


def _request(rid: str, kind: AssetKind, persona: str) -> GenerationRequest:
    constraints = (
        Constraints(width=512, height=512, format="png")
        if kind is AssetKind.IMAGE
        else Constraints(max_chars=280, language="en")
    )
    return GenerationRequest(
        request_id=rid,
        idempotency_key=rid,
        tenant="bench",
        campaign_id="bench",
        kind=kind,
        prompt_template="Hero banner for ${persona}" if kind is AssetKind.IMAGE else "Copy",
        variables={"persona": persona, "locale": "en-GB", "product": "Aurora"},
        constraints=constraints,
        brand_profile_id="bench",
    )


async def _make(store: LocalBlobStore) -> dict[AssetKind, list[BlobRef]]:
    provider = OfflineProvider()
    refs: dict[AssetKind, list[BlobRef]] = {AssetKind.IMAGE: [], AssetKind.TEXT: []}
    for kind, media in ((AssetKind.IMAGE, "image/png"), (AssetKind.TEXT, "text/plain")):
        for i in range(DISTINCT):
            req = _request(f"make-{i}", kind, f"persona {i}")
            made = await provider.generate(ProviderCall(req, render_prompt(req), "offline"))
            data = made.data
            if kind is AssetKind.TEXT and i % 10 == 0:
                data += b" Results guaranteed."
            refs[kind].append(store.put(data, media))
    return refs


def run(assets: int, workers: int, repeats: int = 3) -> dict[str, Any]:
    codecs = Codecs.load()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "bench.json").write_text(json.dumps(PROFILE))
        policies = load_dry_run_policies(root / "bench.json")
        store = LocalBlobStore(root / "blobs", cache_bytes=0)
        refs = asyncio.run(_make(store))
        values = []
        for i in range(assets):
            kind = AssetKind.IMAGE if i % 2 else AssetKind.TEXT
            blob = refs[kind][(i // 2) % DISTINCT]
            raw = RawAsset(
                request=_request(f"r{i}", kind, f"persona {i}"),
                blob=blob,
                provider="offline",
                model_version="offline-1",
                latency_ms=1.0,
            )
            values.append(codecs.raw.encode(raw))

        async def go() -> list[tuple[float, float, float, list[Any]]]:
            runs = []
            with SuitePool(policies, workers=workers) as pool:
                # warm the pool (spawn + building the checks) outside the timing
                await check_assets(
                    [raw_assets(codecs, values[: max(workers, 1) * 64])], policies, store, pool
                )
                for _ in range(repeats):
                    started, cpu = time.perf_counter(), _cpu_seconds()
                    batches = (  # as the CLI decodes a fetched batch: a chunk at a time
                        raw_assets(codecs, values[i : i + CHUNK])
                        for i in range(0, len(values), CHUNK)
                    )
                    outcomes = await check_assets(batches, policies, store, pool)
                    seconds = time.perf_counter() - started
                    cpu = _cpu_seconds() - cpu
                    runs.append((seconds, cpu, os.getloadavg()[0], outcomes))
            return runs

        runs = asyncio.run(go())
    reports = [
        (build_report(outcomes, profile="bench", topic="bench.raw", seconds=seconds), cpu, load)
        for seconds, cpu, load, outcomes in runs
    ]
    report = reports[0][0]
    rates = sorted(r.assets_per_s for r, _, _ in reports)
    return {
        "meta": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "assets": assets,
        "workers": workers,
        "checked": report.checked,
        "would_fail": len(report.would_fail),
        "failed_per_check": {code: t.failed for code, t in report.checks.items() if t.failed},
        "checks_per_asset": round(sum(t.checked for t in report.checks.values()) / assets, 2),
        "runs": [
            {
                "seconds": round(r.seconds, 3),
                "assets_per_s": round(r.assets_per_s, 1),
                "cpu_ms_per_asset": round(1_000 * cpu / r.checked, 3),
                "load_average_1m": round(load, 2),
            }
            for r, cpu, load in reports
        ],
        "assets_per_s_median": round(rates[len(rates) // 2], 1),
        "target_assets_per_s": 500,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assets", type=int, default=4_000)
    parser.add_argument("--workers", type=int, default=default_workers())
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/results/policy_check.json"))
    args = parser.parse_args()
    result = run(args.assets, args.workers, args.repeats)
    print(json.dumps(result, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
