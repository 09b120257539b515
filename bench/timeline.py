"""Request timeline: how fast the index takes records, and how fast a timeline answers.

    python -m bench.timeline [--requests 100000] [--lookups 1000]

Builds ``--requests`` synthetic requests as the line writes them (real Avro records through
:class:`streams.codecs.Codecs`: 80% delivered with a webhook call, 10% held in review, 10%
failed, 1% with a dead letter too; about 5 records each), applies them through
:meth:`RequestIndex.apply` (the follower's path, no broker), then times ``timeline()`` and the
JSON answer (``timeline_json``, what ``assetline status --json`` and the console render) for
``--lookups`` random ids, and a campaign's progress. Then the console's pages on that index:
a real aiohttp server on 127.0.0.1 (the console's app, sign-in and CSRF middlewares included,
no broker: the index is handed in) answers ``GET /requests/{id}`` (HTML and ``?format=json``)
for the same ids and ``GET /campaigns``; timed on the server (a middleware around the whole
chain, from routing to the rendered body) and as the client sees it (loopback round trip).
Target (issue 17): a timeline answers in under 100 ms with 100,000 requests indexed. Prints a
table and writes bench/results/timeline.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import resource
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any

from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer

from assetline.console import _signin, timeline_views
from assetline.console._app import CONSOLE, Page, create_app
from assetline.console.sessions import COOKIE
from assetline.dev.broker import free_ports
from assetline.timeline import RequestIndex, campaign_progress, timeline_json
from streams.codecs import Codecs
from streams.settings import Settings
from tests.support.request_events import (
    Record,
    dead_letter,
    delivered_story,
    failed_story,
    review_story,
)

TARGET_MS = 100.0
START_MS = 1_800_000_000_000
CHUNK = 5_000
CAMPAIGNS = 10


def story(codecs: Codecs, i: int) -> list[Record]:
    """Request ``i``'s records: mostly delivered, some in review, some failed."""
    rid = f"bench-{i:07d}"
    campaign = f"campaign-{i % CAMPAIGNS}"
    start = START_MS + i * 7  # one request every 7 ms, overlapping like a busy line
    slot = i % 10
    if slot == 8:
        records = review_story(codecs, rid, start, campaign)
    elif slot == 9:
        records = failed_story(codecs, rid, start, "routing.unknown_provider: none", campaign)
    else:
        records = delivered_story(codecs, rid, start, campaign)
    if i % 100 == 0:
        records.append(dead_letter(rid, start + 3))
    return records


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def rss_mb() -> float:
    """Peak resident set of this process (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(requests: int, lookups: int, seed: int) -> dict[str, Any]:
    codecs = Codecs.load()
    index = RequestIndex(codecs, max_requests=max(requests, 1))
    records = 0
    apply_s = apply_cpu_s = build_s = 0.0
    for first in range(0, requests, CHUNK):
        started = time.perf_counter()
        batch = [r for i in range(first, min(first + CHUNK, requests)) for r in story(codecs, i)]
        build_s += time.perf_counter() - started
        started, cpu = time.perf_counter(), time.process_time()
        for r in batch:
            index.apply(r.topic, r.key, r.value, r.headers, r.timestamp)
        apply_s += time.perf_counter() - started
        apply_cpu_s += time.process_time() - cpu
        records += len(batch)
    assert len(index) == requests, (len(index), requests)
    rng = random.Random(seed)
    ids = [f"bench-{rng.randrange(requests):07d}" for _ in range(lookups)]
    lookup_ms: list[float] = []
    answer_ms: list[float] = []
    for rid in ids:
        started = time.perf_counter()
        entries = index.timeline(rid)
        lookup_ms.append((time.perf_counter() - started) * 1000)
        assert entries, rid
        started = time.perf_counter()
        json.dumps(timeline_json(rid, index.timeline(rid), index.state(rid)))
        answer_ms.append((time.perf_counter() - started) * 1000)
    started = time.perf_counter()
    progress = campaign_progress(index, "campaign-0", now_ms=START_MS + requests * 7)
    progress_ms = (time.perf_counter() - started) * 1000
    pages = asyncio.run(console_pages(index, ids))
    return {
        "requests": requests,
        "records": records,
        "entries": sum(len(index.timeline(rid)) for rid in ids) / len(ids),
        "build_s": round(build_s, 2),
        "apply_s": round(apply_s, 2),
        "apply_cpu_s": round(apply_cpu_s, 2),
        "records_per_s": round(records / apply_s),
        "records_per_cpu_s": round(records / apply_cpu_s),
        "requests_per_s": round(requests / apply_s),
        "lookups": lookups,
        "timeline_ms": _stats(lookup_ms),
        "answer_json_ms": _stats(answer_ms),
        "campaign_progress_ms": round(progress_ms, 2),
        "campaign_requests": progress.requests,
        "console_page_server_ms": _stats(pages["html"]),
        "console_page_http_ms": _stats(pages["html_http"]),
        "console_json_server_ms": _stats(pages["json"]),
        "campaigns_page_server_ms": _stats(pages["campaigns"]),
        "peak_rss_mb": round(rss_mb()),
        "load_avg": os.getloadavg()[0],
        "cpus": os.cpu_count(),
        "target_ms": TARGET_MS,
        "met": max(percentile(answer_ms, 99), percentile(pages["html"], 99)) < TARGET_MS,
    }


async def console_pages(index: RequestIndex, ids: list[str]) -> dict[str, list[float]]:
    """Server-side and round-trip times (ms) of the console's timeline and campaigns pages
    on ``index``: the console's own app and middlewares, plus one timing middleware in front."""
    (port,) = free_ports(1)  # nothing listens there: the pages never ask the broker
    settings = Settings(kafka_bootstrap=f"127.0.0.1:{port}", topic_prefix="bench")
    pages = [
        Page("", "/signin", _signin.routes),
        Page("Timeline", "/requests", timeline_views.routes),
        Page("Campaigns", "/campaigns", timeline_views.campaign_routes),
    ]
    app = create_app(settings, pages, codecs=index.codecs)
    console = app[CONSOLE]
    console.state[timeline_views.INDEX_KEY] = index  # handed in: no follower
    served: list[float] = []

    @web.middleware
    async def timed(request: web.Request, handler: Any) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            return await handler(request)  # type: ignore[no-any-return]
        finally:
            served.append((time.perf_counter() - started) * 1000)

    app.middlewares.insert(0, timed)
    cookie, _ = console.signer.issue("bench")
    times: dict[str, list[float]] = {"html": [], "html_http": [], "json": [], "campaigns": []}
    async with TestServer(app, host="127.0.0.1") as server:
        headers = {"Cookie": f"{COOKIE}={cookie}", "Accept": "text/html"}
        async with ClientSession(str(server.make_url("/")), headers=headers) as http:
            for rid in ids:
                started = time.perf_counter()
                async with http.get(f"/requests/{rid}") as answer:
                    body = await answer.text()
                times["html_http"].append((time.perf_counter() - started) * 1000)
                assert answer.status == 200, (rid, answer.status)
                assert 'class="event"' in body, rid
                times["html"].append(served[-1])
                async with http.get(f"/requests/{rid}?format=json") as answer:
                    assert answer.status == 200, (rid, answer.status)
                    await answer.read()
                times["json"].append(served[-1])
            for _ in range(5):
                console.state.pop(timeline_views.PROGRESS_KEY, None)  # computed, not cached
                async with http.get("/campaigns") as answer:
                    assert answer.status == 200
                    await answer.read()
                times["campaigns"].append(served[-1])
    return times


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(statistics.median(values), 4),
        "p99": round(percentile(values, 99), 4),
        "max": round(max(values), 4),
    }


def _row(stats: dict[str, float], where: str) -> str:
    return f"{stats['p50']:.2f} / {stats['p99']:.2f} / {stats['max']:.2f} ms ({where})"


def table(result: dict[str, Any]) -> str:
    t, a = result["timeline_ms"], result["answer_json_ms"]
    rows = [
        ("requests indexed", f"{result['requests']:,}"),
        ("records applied", f"{result['records']:,} ({result['entries']:.1f} entries/request)"),
        ("indexing", f"{result['records_per_s']:,} records/s ({result['requests_per_s']:,} "
                     f"requests/s, {result['apply_s']} s wall)"),
        ("indexing, CPU time", f"{result['records_per_cpu_s']:,} records/s "
                               f"({result['apply_cpu_s']} s)"),
        ("load average (1 min)", f"{result['load_avg']:.1f} on {result['cpus']} CPU(s)"),
        ("timeline() p50 / p99 / max", f"{t['p50']:.4f} / {t['p99']:.4f} / {t['max']:.4f} ms"),
        ("JSON answer p50 / p99 / max", f"{a['p50']:.4f} / {a['p99']:.4f} / {a['max']:.4f} ms"),
        ("campaign progress", f"{result['campaign_progress_ms']} ms "
                              f"({result['campaign_requests']:,} requests)"),
        ("console page p50 / p99 / max", _row(result["console_page_server_ms"], "on the server")),
        ("  round trip p50 / p99 / max", _row(result["console_page_http_ms"], "loopback")),
        ("console JSON p50 / p99 / max", _row(result["console_json_server_ms"], "on the server")),
        ("campaigns page p50 / max", f"{result['campaigns_page_server_ms']['p50']:.1f} / "
                                     f"{result['campaigns_page_server_ms']['max']:.1f} ms "
                                     f"({CAMPAIGNS} campaigns)"),
        ("peak RSS", f"{result['peak_rss_mb']} MB"),
        ("target", f"p99 < {result['target_ms']:.0f} ms: {'met' if result['met'] else 'MISSED'}"),
    ]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name.ljust(width)}  {value}" for name, value in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--json", type=Path, default=Path("bench/results/timeline.json"))
    args = parser.parse_args()
    result = run(args.requests, args.lookups, args.seed)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    result |= {"commit": commit, "python": platform.python_version(), "machine": platform.node()}
    print(table(result))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
