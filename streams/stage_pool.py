"""A stage's events run concurrently, in the order the line owes them, not in Kafka order.

A Faust agent handles its events one after another (or ``concurrency`` at a time, still in
arrival order). With providers that take seconds per call, that caps a worker at a handful of
calls in flight and makes a hero asset wait behind a 10,000-request campaign. The pool
decouples the two: the agent only *takes* events and submits them as jobs; the pool starts up to
``max_running`` jobs at once, choosing the next by priority and then by weighted fair share
across flows (tenants), see :class:`streams.fair_queue.FairQueue`.

What it keeps:
- **Commits**: the agent acknowledges an event only when its job is done (the stream is a
  ``noack`` stream), and :class:`streams.safe_consumer.SafeConsumer` commits only past the
  consecutive run of finished offsets, so a crash repeats unfinished events, never skips them.
- **Order per key**: jobs with the same ``key`` (a request id) run one at a time, in the order
  they were chosen, so one request's events are never handled out of order.
- **Lanes**: a job may name a ``lane`` (a destination) with a limit of its own; a job whose
  lane is full waits aside without taking a running slot, so one slow destination holds back
  only its own jobs.
- **Spills**: a lane holds at most ``lane_max_waiting(lane)`` parked jobs. With a ``spill``
  callback, a job for a lane at that bound is handed to ``spill`` instead of being parked (the
  deliver stage writes it to a Kafka topic of deferred deliveries), or, when a less urgent job
  is parked there, that one is handed over and the job takes its place. Every job of the
  spilled one's key behind it goes too, one at a time in order: a dead destination otherwise
  filled the whole pool's waiting room and stopped the stage for every tenant (issue 16).
  Nothing is lost: ``spill`` acknowledges a job's event only once it is stored elsewhere; a
  ``spill`` that raises leaves that job and those behind it here (it parked beyond the bound,
  they behind its key).
- **Bounded memory**: at most ``max_waiting`` jobs wait; :meth:`submit` awaits room, so the
  agent stops taking events and Faust's flow control stops fetching.
- **Rebalances**: a job whose event belongs to an older consumer generation is dropped
  unstarted (``stale``): the seek after the rebalance fetches the event again. When a rebalance
  starts revoking partitions, :meth:`drop_waiting` drops every job not started yet (the same
  seek fetches them again), so the revocation waits only for the jobs running, not for
  everything taken ahead (see :mod:`streams.pooled_stage`).
- **Urgent jobs do not wait for a slot**: jobs of ``urgent_rank`` or above (HIGH requests,
  rare by design) may start up to ``urgent_reserve`` beyond ``max_running``. The running jobs
  of a busy generate stage mostly wait for their provider's in-flight slots (where HIGH goes
  first anyway), so a HIGH event waited for one of them to finish: 1-2 s behind 10,000 NORMAL
  while the provider's limit was still ramping up (bench.providers priority, issue 16).
- **Long waits step aside**: a job that waits for something that takes nothing here (a
  provider's batch, minutes to a day) wraps the wait in :func:`stepping_aside`, and its running
  slot goes to the next job meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from streams.fair_queue import FairQueue

log = logging.getLogger(__name__)

#: The pool and job the current task runs (set per job task; None outside a pool).
_running_in: ContextVar[tuple[StagePool, Job] | None] = ContextVar("running_in", default=None)


@asynccontextmanager
async def stepping_aside() -> AsyncIterator[None]:
    """Give the current job's running slot to the next job while the block waits.

    For waits that hold nothing of this worker (a request waiting for its provider batch): a
    slot held for a day would take the worker's concurrency away from synchronous requests.
    The job keeps its key and lane, and its event stays unacknowledged; when the block ends it
    runs on at once, even if that briefly puts the pool above ``max_running``. A rebalance
    revoking partitions cancels such a job (:meth:`StagePool.drop_waiting`): waiting a day for
    a batch must not hold a rebalance. Outside a pool job it does nothing.
    """
    running = _running_in.get()
    task = asyncio.current_task()
    if running is None or task is None:
        yield
        return
    pool, job = running
    pool._aside_running += 1
    pool._stepped_aside[task] = job
    pool._dispatch()
    try:
        yield
    finally:
        pool._aside_running -= 1
        pool._stepped_aside.pop(task, None)


@dataclass(eq=False, slots=True)
class Job:
    """One event's work and how to schedule it (slotted: thousands wait at once)."""

    run: Callable[[], Awaitable[None]]
    priority: int = 0
    flow: str = ""
    key: str | None = None
    lane: str | None = None
    #: True once the job must not run any more (its event is of an older consumer generation).
    stale: Callable[[], bool] = field(default=lambda: False)
    #: What the job is for (a Kafka message); the pool never looks at it.
    subject: object = None


class StagePool:
    """Runs submitted jobs concurrently (see the module docstring); use :meth:`running`."""

    def __init__(
        self,
        name: str,
        *,
        max_running: int,
        max_waiting: int,
        weight: Callable[[str], float] | None = None,
        lane_limit: Callable[[str], int] | None = None,
        urgent_rank: int | None = None,
        urgent_reserve: int = 0,
        lane_max_waiting: Callable[[str], int] | None = None,
        spill: Callable[[Job], Awaitable[None]] | None = None,
    ) -> None:
        if max_running < 1 or max_waiting < 1:
            raise ValueError("a pool needs max_running >= 1 and max_waiting >= 1")
        if urgent_reserve < 0:
            raise ValueError("urgent_reserve must be >= 0")
        self.name = name
        self.max_running = max_running
        self.max_waiting = max_waiting
        #: Jobs of this priority or above may take ``urgent_reserve`` slots above max_running.
        self.urgent_rank = urgent_rank
        self.urgent_reserve = urgent_reserve if urgent_rank is not None else 0
        self._queue: FairQueue[Job] = FairQueue(weight)
        self._lane_limit = lane_limit or (lambda _lane: max_running)
        self._tasks: set[asyncio.Task[None]] = set()
        #: Running jobs that stepped aside (see stepping_aside): they hold no running slot.
        self._aside_running = 0
        self._stepped_aside: dict[asyncio.Task[None], Job] = {}
        #: Keys with a job running -> the jobs of that key chosen since, in order.
        self._keys: dict[str, deque[Job]] = {}
        #: Lanes -> jobs running in them / jobs chosen while the lane was full.
        self._lane_running: dict[str, int] = {}
        #: Jobs waiting for room in their lane, in the line's order too: a HIGH request's
        #: delivery must not queue behind a campaign already parked for the same destination.
        self._lane_parked: dict[str, FairQueue[Job]] = {}
        #: Parked jobs a lane may hold before its next job is spilled (without spill: no bound).
        self._lane_max_waiting = lane_max_waiting if spill is not None else None
        self._spill = spill
        #: Tasks handing a key's jobs to ``spill`` -> the jobs they hand over now. Not running
        #: slots: a spill is a quick write, and a slow one must not stall the other lanes.
        self._spilling: dict[asyncio.Task[None], list[Job]] = {}
        self._weight = weight
        self._aside = 0  # jobs waiting behind a key or a lane (counted as waiting)
        self._changed = asyncio.Event()
        self._closed = False
        self._feeders = 0  # open running() blocks (see running)

    # --- what the agent calls ----------------------------------------------------------------

    @property
    def waiting(self) -> int:
        """Jobs not running yet; a key's jobs being spilled count once, so spills (each a task
        holding events) stay within ``max_waiting`` too while the topic they go to is slow."""
        return len(self._queue) + self._aside + len(self._spilling)

    @property
    def in_progress(self) -> int:
        return len(self._tasks)

    def lanes_parked(self) -> dict[str, int]:
        """Jobs parked for each lane now (for a gauge; lanes with none are left out)."""
        return {lane: len(parked) for lane, parked in self._lane_parked.items()}

    async def submit(self, job: Job) -> None:
        """Queue ``job``; waits while ``max_waiting`` jobs are already waiting.

        An urgent job may also take ``urgent_reserve`` places beyond ``max_waiting``: with
        several feeders (generate takes ``.requests`` and ``.requests.urgent``), the room one
        finished job makes went to whichever feeder ran first, so a HIGH request waited for
        the NORMAL feeder to fill the pool again and again (tests/integration/
        test_scheduling.py, the urgent-topic test, once streams took events in batches).
        """
        bound = self.max_waiting + (self.urgent_reserve if self._urgent(job) else 0)
        while self.waiting >= bound and not self._closed:
            self.drop_stale()
            if self.waiting < bound:
                break
            self._changed.clear()
            await self._changed.wait()
        if self._closed:
            raise RuntimeError(f"pool {self.name} is closed")
        self._queue.push(job, priority=job.priority, flow=job.flow)
        self._dispatch()

    @asynccontextmanager
    async def running(self) -> AsyncIterator[StagePool]:
        """The pool for its feeders' lifetime. Several agents may feed one pool (generate takes
        ``.requests`` and ``.requests.urgent``), each inside its own ``running()``; the last
        to leave cancels and awaits every job in progress (what Faust does to an agent's own
        handlers when the worker stops). One leaving earlier (an agent restarted after a
        crash) leaves the jobs alone: the others still feed the pool, and its jobs still ack."""
        self._feeders += 1
        self._closed = False
        try:
            yield self
        finally:
            self._feeders -= 1
            if not self._feeders:
                await self._close()

    async def _close(self) -> None:
        self._closed = True
        self._changed.set()
        tasks = [*self._tasks, *self._spilling]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._feeders:  # a feeder came back while the jobs wound down: its jobs stay
            return
        self._queue.remove_if(lambda _job: True)
        self._keys.clear()
        self._lane_parked.clear()
        self._lane_running.clear()
        self._aside = 0

    async def idle(self) -> None:
        """Wait until nothing waits or runs (for tests and benchmarks)."""
        while self.waiting or self._tasks or self._spilling:
            self._changed.clear()
            await self._changed.wait()

    # --- scheduling --------------------------------------------------------------------------
    #
    # A key is "owned" while one of its jobs runs or waits for room in its lane; jobs of an
    # owned key wait in the key's deque, in the order they were chosen.

    def _dispatch(self) -> None:
        while self._room_for_next():
            job = self._queue.pop()
            if job.stale():
                self.drop_stale()
                continue
            if job.key is not None:
                behind = self._keys.get(job.key)
                if behind is not None:
                    behind.append(job)
                    self._aside += 1
                    continue
                self._keys[job.key] = deque()
            self._enter_lane(job)

    def _room_for_next(self) -> bool:
        """A job waits and a slot is free for it: a regular one, or one of the urgent reserve
        when the next job is urgent."""
        if not len(self._queue):
            return False
        running = len(self._tasks) - self._aside_running
        if running < self.max_running:
            return True
        if running >= self.max_running + self.urgent_reserve or self.urgent_rank is None:
            return False
        top = self._queue.top_priority()
        return top is not None and top >= self.urgent_rank

    def _urgent(self, job: Job) -> bool:
        return self.urgent_rank is not None and job.priority >= self.urgent_rank

    def _enter_lane(self, job: Job, *, may_spill: bool = True) -> None:
        """Start ``job`` (whose key it owns), park it until its lane has room, or spill it
        (with its key's jobs behind it) when its lane already has its bound parked."""
        if job.lane is not None and self._lane_full(job.lane):
            parked = self._lane_parked.get(job.lane)
            if parked is None:
                parked = self._lane_parked[job.lane] = FairQueue(self._weight)
            bound = self._lane_max_waiting
            if may_spill and bound is not None and len(parked) >= max(1, bound(job.lane)):
                # A less urgent job waiting there gives way (the one it would serve last):
                # a HIGH delivery must not be deferred while a campaign's stay parked.
                spilled = parked.pop_last(below=job.priority)
                if spilled is None:
                    spilled = job
                else:
                    parked.push(job, priority=job.priority, flow=job.flow)
                task = asyncio.ensure_future(self._spill_key(spilled))
                self._spilling[task] = [spilled]
                task.add_done_callback(functools.partial(self._spilled, spilled))
                return
            parked.push(job, priority=job.priority, flow=job.flow)
            self._aside += 1
            return
        self._launch(job)

    async def _spill_key(self, first: Job) -> None:
        """Hand ``first`` and then every job of its key behind it to ``spill``, in order.

        The key stays owned meanwhile, so a job of it chosen during the write queues behind
        and goes next: none of the key's jobs runs here ahead of one spilled before it. A job
        of an older generation is left out (the seek fetches its event again). A cancelled
        spill frees the key in :meth:`_spilled` (a task cancelled before it started never
        runs this body)."""
        assert self._spill is not None
        task = asyncio.current_task()
        assert task is not None
        batch: list[Job] = [first]
        while batch:
            self._spilling[task] = batch
            while batch:
                job = batch[0]
                if not job.stale():
                    try:
                        await self._spill(job)
                    except Exception:
                        log.exception("%s: %d job(s) not spilled; kept", self.name, len(batch))
                        self._keep(batch)
                        return
                batch.pop(0)
            batch = self._take_behind(first.key)
        self._next_of_key(first)  # nothing behind: the key is free

    def _spilled(self, first: Job, task: asyncio.Task[None]) -> None:
        self._spilling.pop(task, None)
        if task.cancelled() and not self._closed:
            self._next_of_key(first)  # a revocation: what is behind the key goes on
        self._changed.set()

    def _take_behind(self, key: str | None) -> list[Job]:
        behind = self._keys.get(key) if key is not None else None
        if not behind:
            return []
        taken = list(behind)
        behind.clear()
        self._aside -= len(taken)
        return taken

    def _keep(self, jobs: list[Job]) -> None:
        """``spill`` failed: the jobs wait here after all, the first owning its key."""
        if self._closed:
            return
        first, rest = jobs[0], jobs[1:]
        if first.key is not None and rest:
            self._keys.setdefault(first.key, deque()).extendleft(reversed(rest))
            self._aside += len(rest)
        self._enter_lane(first, may_spill=False)

    def _lane_full(self, lane: str) -> bool:
        return self._lane_running.get(lane, 0) >= max(1, self._lane_limit(lane))

    def _launch(self, job: Job) -> None:
        if job.stale():  # chosen before a rebalance, its turn came after: the refetch runs it
            self._next_of_key(job)
            return
        if job.lane is not None:
            self._lane_running[job.lane] = self._lane_running.get(job.lane, 0) + 1
        task = asyncio.ensure_future(self._run(job))
        self._tasks.add(task)

    async def _run(self, job: Job) -> None:
        _running_in.set((self, job))  # this task's own context (see stepping_aside)
        try:
            await job.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # the job's own guard should have caught it; keep the pool alive
            log.exception("%s: a job crashed", self.name)
        finally:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.discard(task)
            if not self._closed:
                self._finished(job)
            self._changed.set()

    def _finished(self, job: Job) -> None:
        lane = job.lane
        if lane is not None:
            left = self._lane_running.get(lane, 1) - 1
            if left > 0:
                self._lane_running[lane] = left
            else:
                self._lane_running.pop(lane, None)
            parked = self._lane_parked.get(lane)
            while parked is not None and len(parked) and not self._lane_full(lane):
                self._aside -= 1
                self._launch(parked.pop())
            if parked is not None and not len(parked):
                del self._lane_parked[lane]
        self._next_of_key(job)
        self._dispatch()

    def _next_of_key(self, job: Job) -> None:
        """``job`` is done (or dropped): the next job of its key goes, or the key is free."""
        if job.key is None:
            return
        behind = self._keys.get(job.key)
        if not behind:
            self._keys.pop(job.key, None)
            return
        self._aside -= 1
        self._enter_lane(behind.popleft())

    def drop_waiting(self) -> list[Job]:
        """Drop every job not started yet (queued, behind a key, or waiting for a lane) and
        cancel those stepping aside (see :func:`stepping_aside`), and return them; the other
        running jobs go on. For a rebalance that revokes partitions: the seek after it fetches
        their events again."""
        dropped = self._queue.remove_if(lambda _job: True)
        for task, jobs in list(self._spilling.items()):
            task.cancel()  # a write not acknowledged yet: the seek fetches the events again
            dropped.extend(jobs)
        for task, job in list(self._stepped_aside.items()):
            task.cancel()  # its event is fetched again; a batch call in flight is given up
            dropped.append(job)
        for parked in self._lane_parked.values():
            for job in list(parked):  # a job waiting for its lane owns its key, none runs
                dropped.append(job)
                behind = self._keys.pop(job.key, None) if job.key is not None else None
                dropped.extend(behind or ())
        self._lane_parked.clear()
        for behind in self._keys.values():  # keys of running jobs: only those behind them
            dropped.extend(behind)
            behind.clear()
        self._aside = 0
        if dropped:
            log.info("%s: %d waiting event(s) dropped for a rebalance", self.name, len(dropped))
            self._changed.set()
        return dropped

    def drop_stale(self) -> None:
        """Drop every queued job of an older consumer generation (one scan per rebalance);
        those already set aside behind a key or a lane are dropped when their turn comes."""
        dropped = len(self._queue.remove_if(lambda job: job.stale()))
        if dropped:
            log.info("%s: %d waiting event(s) of an older generation dropped", self.name, dropped)
            self._changed.set()
