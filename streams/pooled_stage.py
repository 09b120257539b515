"""Wire a Faust agent's stream to a :class:`streams.stage_pool.StagePool`.

The agent's body becomes ``await feed_pool(stream, pool, app, place=..., handle=...)``: it
takes events as fast as the pool has room, and each event is acknowledged only when its
``handle`` returned. An event whose handling was cancelled (the worker stopping) or raised is
never acknowledged, so its partition commits no further and the event is fetched again after
the next seek.

One override of a Faust internal: each job sets Faust's task-local *current event*
(``faust.streams._current_event``, the context variable Faust sets per event it yields) to its
own event. A job runs in its own task, started from whichever task freed its slot, so it would
otherwise see another event: a table write (``table[key] = value``) takes its changelog
partition, and a RocksDB store its partition database, from the current event, so the write
would land in another partition's ledger (and be lost to the worker that owns this one).

Rebalances. Before Faust hands partitions back it clears its flow-controlled queues and then
waits until every event a stream took is acknowledged (``Consumer.wait_empty``). Events waiting
in the pool count as taken, so that wait lasted until the pool had drained: measured with a
1 s/PUT destination, 30 s in which no tenant's event was handled (and minutes behind a dead
destination). The pool therefore registers with Faust's flow control as one more queue: a clear
while the flow is suspended (a revocation, or the worker stopping) drops the jobs not started
yet and takes their messages out of the consumer's set of unacknowledged ones, so the wait is
for the running jobs only. Nothing is lost: a dropped event is neither acknowledged nor
handled, so no commit passes it, and the seek after the rebalance fetches it again. A clear
while the flow runs (Faust resuming it) leaves the pool alone.

Deferred records. A topic whose records come due later (the deliver stage's
``.deliver.deferred``) is fed with ``due``: each event taken waits in a bounded due-time queue
(:class:`streams.due_queue.DueQueue`) and goes to the pool once due. Only that agent waits:
the others take their topics on, the consumer keeps polling (a full queue stops this agent
taking, and Faust's buffer pressure then stops fetching only its partitions), and a revocation
drops the held events like the pool's waiting jobs (the seek fetches them again).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import weakref
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import Any, Final

from faust.streams import _current_event

from streams.due_queue import DueQueue
from streams.stage_pool import Job, StagePool

#: Events a ``due`` feeder holds at most (each a taken, unacknowledged event: 1-2 KB).
MAX_HELD: Final = 1_000


@dataclass(frozen=True)
class Place:
    """Where an event stands in line: rank (higher first), flow, key and lane (see Job)."""

    rank: int = 0
    flow: str = ""
    key: str | None = None
    lane: str | None = None


async def feed_pool(
    stream: Any,
    pool: StagePool,
    app: Any,
    *,
    place: Callable[[Any], Place],
    handle: Callable[[Any], Awaitable[None]],
    due: Callable[[Any], float] | None = None,
    max_held: int = MAX_HELD,
    clock: Callable[[], float] = time.time,
    longest_wait_s: float = 0.0,
) -> None:
    """Take ``stream``'s events into ``pool`` until the agent stops (see the module docstring).

    ``place(event)`` must be cheap and never raise for bad input (it runs on the taking loop);
    ``handle(event)`` does the stage's work under its own crash guard. With ``due(event)``
    (seconds since the epoch, by ``clock``), an event goes to the pool only once due, at most
    ``max_held`` waiting meanwhile; ``longest_wait_s``: the longest ``due`` puts one off, told
    to the consumer so that a held event is not reported as a stalled one.
    """
    events = stream.noack()
    generation: int | None = None
    stale = _stale_check(app, generation)
    held: _Held | None = None if due is None else _Held(pool, max_held, clock)
    told: set[str] = set()  # topics whose expected wait the consumer knows
    revocations = _DropWaitingOnRevoke(pool, app, held)
    app.flow_control.manage_queue(revocations)  # a weak reference: ``revocations`` keeps it
    async with pool.running():
        releasing = None if held is None else asyncio.ensure_future(held.release())
        try:
            async for event in events.events():
                message = event.message
                if message.generation_id != generation:
                    generation = message.generation_id
                    stale = _stale_check(app, generation)  # one per generation, not per event
                    pool.drop_stale()  # a rebalance: what waits is fetched again by the seek
                    if held is not None:
                        held.drop_stale()
                where = place(event)
                job = Job(
                    _Acking(events, event, handle),
                    priority=where.rank,
                    flow=where.flow,
                    key=where.key,
                    lane=where.lane,
                    stale=stale,
                    subject=message,
                )
                if held is None or releasing is None or due is None:
                    await pool.submit(job)
                else:
                    if message.topic not in told:
                        told.add(message.topic)
                        expect_waits = getattr(app.consumer, "expect_waits", None)
                        if expect_waits is not None:  # streams.safe_consumer.SafeConsumer
                            expect_waits(message.topic, longest_wait_s)
                    await held.hold(due(event), job, releasing)
        finally:
            if releasing is not None:
                releasing.cancel()
                # its end (the pool closing) must not hide why the taking loop ended
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await releasing


def spill_to(write: Callable[[Any], Awaitable[None]]) -> Callable[[Job], Awaitable[None]]:
    """A pool's ``spill`` for jobs of :func:`feed_pool`: ``write(event)`` stores the event
    elsewhere and returns only once that is durable; the event is acknowledged after it, so a
    crash in between stores it twice (its stage must take a repeat) but never loses it."""

    async def spill(job: Job) -> None:
        acking = job.run
        if not isinstance(acking, _Acking):
            raise TypeError("only feed_pool's jobs can be spilled")
        await write(acking.event)
        await acking.events.ack(acking.event)

    return spill


class _Held:
    """Jobs of a ``due`` feeder waiting for their due time, at most ``max_held``."""

    def __init__(self, pool: StagePool, max_held: int, clock: Callable[[], float]) -> None:
        self.pool = pool
        self.max_held = max(1, max_held)
        self.clock = clock
        self.jobs: DueQueue[Job] = DueQueue()
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()

    async def hold(self, due: float, job: Job, releasing: asyncio.Future[None]) -> None:
        """Keep ``job`` until ``due``; waits (this feeder alone) while ``max_held`` wait."""
        while len(self.jobs) >= self.max_held and not releasing.done():
            self._room.clear()
            await self._room.wait()
        if releasing.done():
            releasing.result()  # its error, or the pool closing
            raise RuntimeError("the due-time release stopped")
        self.jobs.push(due, job)
        self._arrived.set()

    async def release(self) -> None:
        """Submit each held job once due, soonest first (the pool may make this wait)."""
        try:
            while True:
                # One at a time: a job popped is in neither this queue nor the pool until
                # submitted, so a revocation meanwhile would not drop its message.
                while (job := self.jobs.pop_next(self.clock())) is not None:
                    self._room.set()
                    await self.pool.submit(job)
                next_due = self.jobs.next_due()
                self._arrived.clear()
                timeout = None if next_due is None else max(0.0, next_due - self.clock())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), timeout)
        finally:
            self._room.set()  # a taker waiting for room sees this task has ended

    def drop_stale(self) -> None:
        if self.jobs.remove(lambda job: job.stale()):
            self._room.set()

    def drop_all(self) -> list[Job]:
        dropped = self.jobs.clear()
        if dropped:
            self._room.set()
        return dropped


class _DropWaitingOnRevoke:
    """A "queue" for Faust's flow control whose clearing drops the pool's waiting jobs (see
    the module docstring)."""

    #: The queued items :class:`streams.safe_consumer.SafeConsumer` would refetch when a clear
    #: resumes the flow: none, because a clear while the flow runs drops nothing here.
    _queue: tuple[()] = ()

    def __init__(self, pool: StagePool, app: Any, held: _Held | None = None) -> None:
        self.pool = pool
        self.app = app
        self.held = held

    def clear(self) -> None:
        if self.app.flow_control.is_active():
            return
        dropped = self.pool.drop_waiting()
        if self.held is not None:
            dropped.extend(self.held.drop_all())
        unacked = getattr(self.app.consumer, "_unacked_messages", None)
        if unacked is None:
            return
        for job in dropped:
            if job.subject is not None:
                unacked.discard(job.subject)


class _Acking:
    """A job's work: handle the event, then acknowledge it.

    One slotted object per event rather than a closure (a function, its cells and their
    tuple): up to ``stage_max_waiting`` of these wait at once, and every object that lives
    that long is scanned again by each full garbage collection (measured in a worker taking
    10,000 requests, issue 16: two full collections of 0.1-0.24 s while it took them).
    """

    __slots__ = ("event", "events", "handle")

    def __init__(self, events: Any, event: Any, handle: Callable[[Any], Awaitable[None]]) -> None:
        self.events = events
        self.event = event
        self.handle = handle

    async def __call__(self) -> None:
        event = self.event
        _current_event.set(weakref.ref(event))  # this task's own (see the module docstring)
        await self.handle(event)
        await self.events.ack(event)  # only after the work is done


def _stale_check(app: Any, generation: int | None) -> Callable[[], bool]:
    """True once the consumer has moved past ``generation`` (shared by its events' jobs)."""
    return lambda: generation != app.consumer_generation_id


#: Events a Faust stream may take per trip round the event loop (Faust takes one).
TAKEN_PER_PASS: Final = 64


def take_events_in_batches(per_pass: int = TAKEN_PER_PASS) -> bool:
    """Let every Faust stream of this process take up to ``per_pass`` buffered events before
    it gives the event loop a turn, instead of one. True if installed.

    Faust's stream iterator awaits ``asyncio.sleep(0)`` before every event. A busy worker's
    loop pass (hundreds of provider calls in flight, the consumer, the producer) takes
    milliseconds, so a stage took its events at about one per pass: close to the rate it
    finished them. The backlog then waited in Faust's stream queue in Kafka order, where no
    priority or fair share applies, instead of in the stage pool, where they do (measured,
    bench.providers fairness-waiting: a tenant's 100 requests sent while another's campaign
    ran waited 5.7 s between ``.raw`` and ``.approved``, for validate to take the campaign's
    raw events first). Streams still yield at least every ``per_pass`` events, and at once
    whenever their queue is empty; a stage's taking loop does little per event (a cheap
    decode and a pool submit), so a pass grows by well under a millisecond.

    The compiled (Cython) stream iterator looks ``sleep`` up in its module, which is what is
    replaced here; without it (pure-Python Faust) nothing changes and False is returned.
    """
    try:
        from faust._cython import streams as compiled
    except ImportError:  # pragma: no cover - Faust built without its extensions
        return False
    current = getattr(compiled, "sleep", None)
    if isinstance(current, _YieldEvery):
        current.per_pass = per_pass
        return True
    compiled.sleep = _YieldEvery(per_pass)
    return True


class _YieldEvery:
    """``asyncio.sleep`` whose ``sleep(0)`` gives the loop a turn only every ``per_pass`` calls."""

    def __init__(self, per_pass: int) -> None:
        self.per_pass = max(1, per_pass)
        self._calls = 0

    def __call__(self, delay: float, result: Any = None) -> Awaitable[Any]:
        if delay <= 0 and result is None:
            self._calls += 1
            if self._calls < self.per_pass:
                return _NOW
            self._calls = 0
        return asyncio.sleep(delay, result)


class _Now:
    """An awaitable that finishes without suspending."""

    def __await__(self) -> Generator[Any, None, None]:
        yield from ()


_NOW: Final = _Now()
