"""Benchmark the whole line on a real broker: throughput, latency, RSS, scaling to 2 workers.

    python bench/line.py [--n 10000] [--paced-n 2500] [--partitions 6] [--profile FILE]

With --profile, every request names that brand profile (and copy declares its locale's
language), so the validate stage runs the profile's whole suite; without, only the request's
own constraints are checked.

Phases (each on fresh uuid-named topics, workers warmed up with a few requests first):
  burst    N requests (half 512x512 PNG images, half copy) submitted at once to 1 worker;
  paced    requests submitted at half the burst rate, for request->completion latency;
  2 workers  the burst again with two worker processes in one consumer group.
Latency is completed_at - created_at of each request (one clock: everything runs here).
Prints a table and writes bench/results/line.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from assetline.client import LineClient, await_completions, open_completion_reader
from assetline.dev.broker import LocalBroker, free_ports
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, Constraints, GenerationRequest, utc_now
from streams.settings import Settings
from streams.topics import ensure_topics, line_topic_specs


def requests_for(run: str, n: int, brand: str | None = None) -> list[GenerationRequest]:
    out = []
    for i in range(n):
        image = i % 2 == 0
        rid = f"{run}-{i:06d}"
        locale = ("en-GB", "de-DE")[i // 2 % 2]
        out.append(
            GenerationRequest(
                request_id=rid,
                idempotency_key=rid,
                tenant="bench",
                campaign_id=run,
                kind=AssetKind.IMAGE if image else AssetKind.TEXT,
                prompt_template="Banner for ${persona}" if image else "Copy for ${persona}",
                variables={"persona": f"p{i % 97}", "locale": locale},
                constraints=(
                    Constraints(width=512, height=512, format="png")
                    if image
                    else Constraints(max_chars=280, language=locale if brand else None)
                ),
                brand_profile_id=brand,
            )
        )
    return out


def stamp(requests: list[GenerationRequest]) -> list[GenerationRequest]:
    now = utc_now()
    return [r.model_copy(update={"created_at": now}) for r in requests]


def rss_peak_mib(pid: int | None) -> float:
    if pid is None:
        return float("nan")
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except FileNotFoundError:
        pass
    return float("nan")


def cpu_seconds(pid: int | None) -> float:
    """User + system CPU time of a process, from /proc (Linux)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


BROKER_PID: list[int | None] = [None]  # set by main() when this script runs the broker


def cpu_snapshot(workers: list[WorkerProcess]) -> dict[str, float]:
    snapshot = {f"worker{i}": cpu_seconds(w.pid) for i, w in enumerate(workers)}
    snapshot["broker"] = cpu_seconds(BROKER_PID[0])
    snapshot["bench"] = cpu_seconds(os.getpid())
    return snapshot


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))
    return ordered[index]


@dataclass
class PhaseResult:
    name: str
    n: int
    seconds: float
    completed: int
    statuses: dict[str, int]
    latencies_ms: list[float]
    rss_mib: list[float]
    cpu_s: dict[str, float]

    def row(self) -> dict[str, object]:
        lat = self.latencies_ms
        return {
            "phase": self.name,
            "requests": self.n,
            "completed": self.completed,
            "seconds": round(self.seconds, 2),
            "assets_per_s": round(self.completed / self.seconds, 1) if self.seconds else 0,
            "p50_ms": round(pct(lat, 50), 1),
            "p95_ms": round(pct(lat, 95), 1),
            "p99_ms": round(pct(lat, 99), 1),
            "peak_rss_mib": [round(r, 1) for r in self.rss_mib],
            "cpu_s": {k: round(v, 1) for k, v in self.cpu_s.items()},
            "cores_busy": round(sum(self.cpu_s.values()) / self.seconds, 2),
            "statuses": self.statuses,
        }


def settings_for(
    bootstrap: str, root: Path, partitions: int, profile: Path | None = None
) -> Settings:
    uid = uuid.uuid4().hex[:10]
    profiles = None
    if profile is not None:
        profiles = root / uid / "profiles"
        profiles.mkdir(parents=True)
        (profiles / profile.name).write_text(profile.read_text(encoding="utf-8"), encoding="utf-8")
    return Settings(
        profiles_dir=profiles,
        kafka_bootstrap=bootstrap,
        app_id=f"bench-{uid}",
        topic_prefix=f"bench-{uid}",
        topic_partitions=partitions,
        blob_dir=root / uid / "blobs",
        delivery_dir=root / uid / "delivery",
        data_dir=root / uid / "worker",
        web_port=0,
    )


def brand_of(settings: Settings) -> str | None:
    """The id of the one profile in the settings' folder (the file name), if any."""
    if settings.profiles_dir is None:
        return None
    (path,) = settings.profiles_dir.iterdir()
    return path.stem


async def warm_up(settings: Settings) -> None:
    warm = stamp(requests_for(f"warm-{uuid.uuid4().hex[:6]}", 8, brand_of(settings)))
    async with LineClient(settings) as client:
        await client.submit(warm)
    got = await await_completions(settings, [r.request_id for r in warm], timeout=120)
    if len(got) != len(warm):
        raise SystemExit(f"warm-up got {len(got)}/{len(warm)} completions; is the worker up?")


async def run_phase(
    name: str, settings: Settings, n: int, rate: float | None, workers: list[WorkerProcess]
) -> PhaseResult:
    requests = requests_for(f"{name}-{uuid.uuid4().hex[:6]}", n, brand_of(settings))
    ids = [r.request_id for r in requests]
    reader = await open_completion_reader(settings)
    await reader.seek_to_end(*reader.assignment())
    cpu_before = cpu_snapshot(workers)
    start = time.perf_counter()
    async with LineClient(settings) as client:
        if rate is None:
            await client.submit(stamp(requests))
        else:
            interval = 1.0 / rate
            batch = max(1, int(rate / 50))  # 50 sends a second, each stamped when sent
            for i in range(0, n, batch):
                target = start + i * interval
                delay = target - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                await client.submit(stamp(requests[i : i + batch]))
    got = await await_completions(settings, ids, timeout=max(120.0, n / 20), consumer=reader)
    seconds = time.perf_counter() - start
    cpu_after = cpu_snapshot(workers)
    await reader.stop()
    statuses: dict[str, int] = {}
    latencies = []
    for events in got.values():
        statuses[events[0].status.value] = statuses.get(events[0].status.value, 0) + 1
        latencies.append(events[0].timings_ms["total"])
    cpu = {k: cpu_after[k] - cpu_before[k] for k in cpu_after}
    rss = [rss_peak_mib(w.pid) for w in workers]
    return PhaseResult(name, n, seconds, len(got), statuses, latencies, rss, cpu)


def start_workers(settings: Settings, count: int, logs: Path) -> list[WorkerProcess]:
    return [
        WorkerProcess(settings, logs / f"{settings.app_id}-{i}.log").start() for i in range(count)
    ]


async def phase_with_workers(
    name: str,
    bootstrap: str,
    root: Path,
    args: argparse.Namespace,
    n: int,
    rate: float | None,
    count: int,
) -> PhaseResult:
    settings = settings_for(bootstrap, root, args.partitions, args.profile)
    await ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings))
    workers = start_workers(settings, count, root / "logs")
    try:
        await warm_up(settings)
        return await run_phase(name, settings, n, rate, workers)
    finally:
        for w in workers:
            w.stop()


def print_table(rows: list[dict[str, object]]) -> None:
    cols = [
        "phase",
        "requests",
        "completed",
        "seconds",
        "assets_per_s",
        "p50_ms",
        "p95_ms",
        "p99_ms",
        "peak_rss_mib",
        "cores_busy",
    ]
    cells = [[str(r[c]) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


async def main_async(args: argparse.Namespace, bootstrap: str, root: Path) -> dict[str, object]:
    burst = await phase_with_workers("burst", bootstrap, root, args, args.n, None, 1)
    rows = [burst.row()]
    rate = burst.completed / burst.seconds / 2
    paced = await phase_with_workers("paced", bootstrap, root, args, args.paced_n, rate, 1)
    paced_row = paced.row()
    paced_row["phase"] = f"paced@{rate:.0f}/s"
    rows.append(paced_row)
    if not args.skip_two_workers:
        two = await phase_with_workers("2 workers", bootstrap, root, args, args.n, None, 2)
        rows.append(two.row())
    result: dict[str, object] = {"rows": rows, "cpus": os.cpu_count()}
    if len(rows) == 3:
        result["two_worker_speedup"] = round(
            float(rows[2]["assets_per_s"]) / float(rows[0]["assets_per_s"]),
            2,  # type: ignore[arg-type]
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--paced-n", type=int, default=2_500)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--skip-two-workers", action="store_true")
    parser.add_argument("--profile", type=Path, default=None, help="Brand profile to validate by.")
    parser.add_argument("--json", type=Path, default=Path("bench/results/line.json"))
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="assetline-bench-"))
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP")
    broker = None
    if not bootstrap:
        port, ctrl = free_ports(2)
        broker = LocalBroker(root / "kafka", port=port, controller_port=ctrl, heap="1g")
        bootstrap = broker.up(timeout=120)
        BROKER_PID[0] = broker.read_pid()
    try:
        result = asyncio.run(main_async(args, bootstrap, root))
    finally:
        if broker is not None:
            broker.down()
    print_table(result["rows"])  # type: ignore[arg-type]
    print("\nCPU seconds per process during each phase:")
    for row in result["rows"]:  # type: ignore[attr-defined]
        print(f"  {row['phase']}: {row['cpu_s']}")
    if "two_worker_speedup" in result:
        print(f"\ntwo workers / one worker throughput: {result['two_worker_speedup']}x")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
