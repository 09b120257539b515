"""Running today's checks on past assets: blobs read by the main process, checks in a pool.

The checks are CPU work in Python (image decoding, palette distances, term matching), so
threads would share one GIL: a pool of processes runs them, each building its policies'
checks once (its initializer) and taking chunks of assets, so the pickling cost is paid per
chunk. ``workers=0`` runs them in this process (tests, tiny ranges).

The main process decodes records, reads blobs and hands chunks out a chunk at a time: each
chunk goes to the pool as soon as its blobs are read, while the pool checks the chunks before
it (decoding and reading a whole fetched batch first left the pool idle for as long as that
took); when every process has two chunks queued it checks the next one itself.

Side effects, deliberately none: the topic range is read by a group-less consumer that never
commits; no producer exists here; a policy's judge is removed before any check is built, so
no provider is called and nothing is paid; blobs are only read.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import threading
import time
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal

from aiokafka import AIOKafkaConsumer

from agents.policy import Policy, ProfileBook, load_profiles
from agents.policy.loader import build_policies, parse_profile_text
from agents.validate.checks import Check, Subject
from agents.validate.checks.image import DEFAULT_MAX_PIXELS, ImageProber
from agents.validate.checks.terms import default_detector
from agents.validate.gateway import build_checks
from agents.validate.suite import run_suite
from agents.validate.validate_one import bounded
from assetline.policy_check.report import AssetOutcome, DryRunReport, build_report
from assetline.policy_check.sources import (
    PastAsset,
    approved_records,
    completions,
    joined,
    raw_assets,
    read_ranges,
)
from assetline.replay.ranges import Bound, PartitionRange, RangeError, resolve
from schemas.errors import AssetlineError
from schemas.records import CheckResult, GenerationRequest
from streams.blobs import BlobError, BlobStore
from streams.codecs import Codecs
from streams.config_files import ConfigError, read_config_text
from streams.kafka import partitions_of
from streams.kafka_security import client_kwargs, start_client
from streams.limits import ASSET_TOO_LARGE, AssetLimits
from streams.settings import Settings
from streams.topics import TopicNames

#: Assets per pool task: large enough that pickling and IPC are noise, small enough to spread;
#: also the slice of a fetched batch that is decoded and read before it is handed out.
CHUNK: Final = 64
#: Blob reads in flight at once.
FETCHES: Final = 32
OTHER_PROFILE: Final = "profile.other"

Topic = Literal["raw", "completed"]


class PolicyCheckError(AssetlineError, ValueError):
    """A dry run that cannot start: no such profile file, topic or partition."""

    code = "policy.check"


@dataclass(frozen=True)
class DryRunPolicies:
    """The policies of the profile file, judges removed, and which assets they apply to."""

    book: ProfileBook
    profile_ids: frozenset[str]
    #: Apply the profile to every asset, whatever profile its request named.
    every_asset: bool = False
    notes: tuple[str, ...] = ()

    def policy_for(self, request: GenerationRequest) -> Policy | None:
        """The policy that now applies to ``request``, or None when it is another profile's."""
        profile_id = request.brand_profile_id
        if profile_id not in self.profile_ids:
            if not self.every_asset or len(self.profile_ids) != 1:
                return None
            (profile_id,) = self.profile_ids
        found = self.book.resolve(profile_id, request.campaign_id)
        return found if isinstance(found, Policy) else None

    @property
    def by_label(self) -> dict[str, Policy]:
        return {policy.label: policy for policy in self.book.policies.values()}


def load_dry_run_policies(path: Path, *, every_asset: bool = False) -> DryRunPolicies:
    """A profile file (or a folder of them, as the worker reads), with judges left out."""
    try:
        if path.is_dir():
            book = load_profiles(path)
        else:
            text = read_config_text(path)
            data = parse_profile_text(text, path.suffix, str(path))
            data.setdefault("id", path.stem)
            book = ProfileBook(build_policies(data, str(path)), {data["id"]: path})
    except ConfigError as exc:
        raise PolicyCheckError(str(exc)) from None
    notes = []
    policies: dict[tuple[str, str | None], Policy] = {}
    for key, policy in book.policies.items():
        if policy.judge is not None:
            notes.append(f"{policy.label}: the AI judge is not asked in a dry run (it is paid)")
            if policy.judge.sentiment:
                notes.append(
                    f"{policy.label}: text.sentiment uses the lexicon's score, not the judge's"
                )
            policy = policy.model_copy(update={"judge": None})
        policies[key] = policy
    ids = frozenset(pid for pid, _ in policies)
    if every_asset and len(ids) != 1:
        raise PolicyCheckError(f"--every-asset needs one profile, {path} has {len(ids)}")
    return DryRunPolicies(ProfileBook(policies, book.origins), ids, every_asset, tuple(notes))


#: One asset for the pool: (policy label, request, media type, bytes).
Job = tuple[str, GenerationRequest, str, bytes]


class LocalSuite:
    """Every policy's checks, built once; runs chunks of jobs in the calling thread."""

    def __init__(self, policies: Mapping[str, Policy], max_pixels: int) -> None:
        prober = ImageProber(max_pixels)  # one decoded image at a time, shared by the checks
        detector = default_detector()
        self.checks: dict[str, tuple[Check, ...]] = {
            label: build_checks(policy, prober, detector) for label, policy in policies.items()
        }
        if detector is not None and any(p.text is not None for p in policies.values()):
            # The language model loads on first use (~1.5 s): at start-up, with the checks.
            detector.detect("warm up the language model")

    def run(self, jobs: Sequence[Job]) -> list[tuple[CheckResult, ...]]:
        out = []
        for label, request, media_type, data in jobs:
            subject = Subject(request=request, data=data, media_type=media_type)
            out.append(tuple(bounded(r) for r in run_suite(subject, self.checks[label])))
        return out


_WORKER_SUITE: LocalSuite | None = None
_STARTED: Any = None  # the pool's start barrier (a multiprocessing Barrier)

#: How long the pool waits for every check process to build its checks.
START_TIMEOUT_S: Final = 120.0


def _init_worker(
    policies: Mapping[str, dict[str, Any]], max_pixels: int, started: Any = None
) -> None:
    """Policies travel as JSON data and are validated again here, by this process's models."""
    global _WORKER_SUITE, _STARTED
    built = {label: Policy.model_validate(data) for label, data in policies.items()}
    _WORKER_SUITE = LocalSuite(built, max_pixels)
    _STARTED = started


def _ready() -> bool:
    """Waits for every process to get here, so each takes one of these (all are started)."""
    if _STARTED is not None:
        _STARTED.wait(START_TIMEOUT_S)
    return _WORKER_SUITE is not None


def _run_in_worker(jobs: Sequence[Job]) -> list[tuple[CheckResult, ...]]:
    assert _WORKER_SUITE is not None, "the pool's initializer builds the suite"
    return _WORKER_SUITE.run(jobs)


def default_workers() -> int:
    """Check processes: one per CPU but the one this process needs to read Kafka and blobs
    (it checks chunks too when they are all busy); two on two CPUs, where this process is
    mostly idle (``python -m bench.policy_check``: in-process ~1,300 assets/s, two processes
    ~1,900, one process with this one checking too about the same); none on one CPU."""
    cpus = os.cpu_count() or 1
    return cpus - 1 if cpus > 2 else (2 if cpus == 2 else 0)


@dataclass
class SuitePool:
    """Runs chunks of jobs in ``workers`` processes (``0``: in this process).

    With ``share``, this process runs a chunk itself when every process has two queued (it
    would otherwise only wait for them): the pool adds to what this process checks instead of
    replacing it. A chunk run here blocks the event loop while it runs, as ``workers=0`` does.
    By default it shares only when there are fewer processes than CPUs: on 2 CPUs, two
    processes that this one joined ran slower than two alone (1,117-2,408 assets/s against
    1,449-2,337 in ``bench.policy_check``), three busy processes for two CPUs.
    """

    policies: DryRunPolicies
    workers: int = field(default_factory=default_workers)
    max_pixels: int = DEFAULT_MAX_PIXELS
    share: bool | None = None
    _executor: Executor | None = None
    _local: LocalSuite | None = None
    _queued: set[Future[list[tuple[CheckResult, ...]]]] = field(default_factory=set)
    #: Chunks run by this process and by the pool (how the work was shared).
    ran_here: int = 0
    ran_in_pool: int = 0

    def __enter__(self) -> SuitePool:
        by_label = self.policies.by_label
        if self.workers <= 0:
            self._local = LocalSuite(by_label, self.max_pixels)
        else:
            as_data = {label: p.model_dump(mode="json") for label, p in by_label.items()}
            # spawn, not fork: this process runs an event loop and Kafka client threads.
            context = multiprocessing.get_context("spawn")
            started = context.Barrier(self.workers)
            self._executor = ProcessPoolExecutor(
                self.workers,
                mp_context=context,
                initializer=_init_worker,
                initargs=(as_data, self.max_pixels, started),
            )
            # Start every process now (each builds its checks and loads the language model),
            # so the first chunks do not wait for a spawn and timings exclude start-up. The
            # barrier makes each process take one _ready: without it the first process up could
            # answer them all while the others were still loading, inside the timed run.
            try:
                for ready in [self._executor.submit(_ready) for _ in range(self.workers)]:
                    ready.result()
            except (BrokenProcessPool, threading.BrokenBarrierError) as exc:
                self._executor.shutdown(wait=False, cancel_futures=True)
                raise PolicyCheckError(
                    f"the check processes did not start ({exc}); their error is on stderr"
                ) from None
            share = self.share
            if share is None:
                share = self.workers < (os.cpu_count() or 1)
            if share:
                self._local = LocalSuite(by_label, self.max_pixels)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)

    def submit(self, jobs: Sequence[Job]) -> asyncio.Future[list[tuple[CheckResult, ...]]]:
        loop = asyncio.get_running_loop()
        if self._executor is None or (
            self._local is not None and len(self._queued) >= 2 * self.workers
        ):
            assert self._local is not None
            future: asyncio.Future[list[tuple[CheckResult, ...]]] = loop.create_future()
            future.set_result(self._local.run(jobs))
            self.ran_here += 1
            return future
        done: Future[list[tuple[CheckResult, ...]]] = self._executor.submit(
            _run_in_worker, list(jobs)
        )
        self._queued.add(done)
        done.add_done_callback(self._queued.discard)
        self.ran_in_pool += 1
        return asyncio.wrap_future(done)


async def check_assets(
    batches: AsyncIterator[list[PastAsset]] | Iterable[list[PastAsset]],
    policies: DryRunPolicies,
    store: BlobStore,
    pool: SuitePool,
    limits: AssetLimits | None = None,
) -> list[AssetOutcome]:
    """Outcomes of every past asset: skipped ones as such, the rest through the pool.

    Blobs are read with ``get_async``; a :class:`BlobError` (``blob.missing``, ...) skips
    the asset under its code. An asset over today's size cap fails ``asset.too_large``
    unread, as validation would fail it.
    """
    limits = limits or AssetLimits()
    outcomes: list[AssetOutcome] = []
    pending: list[tuple[list[PastAsset], asyncio.Future[list[tuple[CheckResult, ...]]]]] = []
    fetching = asyncio.Semaphore(FETCHES)
    in_flight = max(2, pool.workers * 3)

    async def read(asset: PastAsset) -> bytes | str:
        assert asset.blob is not None
        async with fetching:
            try:
                return await store.get_async(asset.blob)
            except BlobError as exc:
                return exc.code

    async def settle(keep: int) -> None:
        """Collect finished chunks in order; wait while more than ``keep`` are unfinished."""
        while pending and (pending[0][1].done() or sum(not f.done() for _, f in pending) > keep):
            assets, future = pending.pop(0)
            for asset, results in zip(assets, await future, strict=True):
                outcomes.append(AssetOutcome(asset.request_id, asset.attempt, results))

    jobs: list[Job] = []
    chunk: list[PastAsset] = []

    async def hand_out() -> None:
        nonlocal jobs, chunk
        pending.append((chunk, pool.submit(jobs)))
        jobs, chunk = [], []
        await settle(in_flight)

    async def handle(batch: list[PastAsset]) -> None:
        ready: list[tuple[PastAsset, str]] = []
        for asset in batch:
            policy = None if asset.request is None else policies.policy_for(asset.request)
            if asset.skipped is not None or asset.request is None or asset.blob is None:
                reason = asset.skipped or "asset.none"
                outcomes.append(AssetOutcome(asset.request_id, asset.attempt, skipped=reason))
            elif policy is None:
                skip = AssetOutcome(asset.request_id, asset.attempt, skipped=OTHER_PROFILE)
                outcomes.append(skip)
            elif (why := limits.refusal(asset.request.kind, asset.blob.size)) is not None:
                result = CheckResult(code=ASSET_TOO_LARGE, passed=False, message=why)
                outcomes.append(AssetOutcome(asset.request_id, asset.attempt, (result,)))
            else:
                ready.append((asset, policy.label))
        # A chunk's worth of blobs at a time, each chunk handed out once read: the pool checks
        # it while the next one is read.
        for start in range(0, len(ready), CHUNK):
            part = ready[start : start + CHUNK]
            datas = await asyncio.gather(*(read(asset) for asset, _ in part))
            for (asset, label), data in zip(part, datas, strict=True):
                if isinstance(data, str):
                    outcomes.append(AssetOutcome(asset.request_id, asset.attempt, skipped=data))
                    continue
                assert asset.request is not None
                assert asset.blob is not None
                jobs.append((label, asset.request, asset.blob.media_type, data))
                chunk.append(asset)
                if len(jobs) == CHUNK:
                    await hand_out()

    if isinstance(batches, AsyncIterator):
        async for batch in batches:
            await handle(batch)
    else:
        for batch in batches:
            await handle(batch)
    if jobs:
        await hand_out()
    await settle(0)
    return outcomes


async def resolve_range(
    kafka: Settings | str,
    topic: str,
    start: Bound,
    stop: Bound | None,
    partition: int | None = None,
) -> list[PartitionRange]:
    """Offsets per partition of ``topic`` for the bounds; the topic must exist."""
    consumer = AIOKafkaConsumer(**client_kwargs(kafka))
    await start_client(consumer, kafka)
    try:
        if topic not in await consumer.topics():
            raise PolicyCheckError(f"topic {topic} does not exist on the cluster")
        partitions = await partitions_of(consumer, topic)
        return await resolve(consumer, topic, partitions, start, stop, partition)
    except RangeError as exc:
        raise PolicyCheckError(str(exc)) from None
    finally:
        await consumer.stop()


async def _past_assets(
    kafka: Settings | str,
    codecs: Codecs,
    names: TopicNames,
    topic: Topic,
    ranges: Sequence[PartitionRange],
) -> AsyncIterator[list[PastAsset]]:
    if topic == "raw":
        async for values in read_ranges(kafka, names.raw, ranges):
            # decoded a chunk at a time, so the pool is not idle while a whole batch decodes
            for i in range(0, len(values), CHUNK):
                yield raw_assets(codecs, values[i : i + CHUNK])
        return
    delivered, skipped = [], []
    async for values in read_ranges(kafka, names.completed, ranges):
        found, rest = completions(codecs, values)
        delivered.extend(found)
        skipped.extend(rest)
    yield skipped
    wanted = {(d.request_id, d.attempt) for d in delivered}
    approved = await approved_records(kafka, codecs, names.approved, wanted)
    assets = joined(delivered, approved)
    for i in range(0, len(assets), 1_000):
        yield assets[i : i + 1_000]


async def dry_run(
    settings: Settings,
    codecs: Codecs,
    store: BlobStore,
    policies: DryRunPolicies,
    topic: Topic,
    start: Bound,
    stop: Bound | None,
    *,
    partition: int | None = None,
    workers: int | None = None,
) -> DryRunReport:
    """The dry-run report of ``topic`` (``raw`` or ``completed``) between the bounds."""
    names = TopicNames.with_prefix(settings.topic_prefix)
    source = names.raw if topic == "raw" else names.completed
    ranges = await resolve_range(settings, source, start, stop, partition)
    pool = SuitePool(policies, max_pixels=settings.max_image_pixels)
    if workers is not None:
        pool.workers = workers
    with pool:
        started = time.perf_counter()  # after the pool starts: its start-up is not the run's
        batches = _past_assets(settings, codecs, names, topic, ranges)
        limits = AssetLimits.from_settings(settings)
        outcomes = await check_assets(batches, policies, store, pool, limits)
        seconds = time.perf_counter() - started
    label = ", ".join(sorted(policies.profile_ids))
    notes = policies.notes
    return build_report(outcomes, profile=label, topic=source, seconds=seconds, notes=notes)
