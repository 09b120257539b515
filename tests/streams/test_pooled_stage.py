"""feed_pool: events acknowledged only once handled, each job sees its own current event, and a
rebalance's revocation drops the jobs not started (it would otherwise wait for all of them)."""

from __future__ import annotations

import asyncio
import time
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.streams import _current_event
from mode.utils.queues import FlowControlEvent

from streams.pooled_stage import Place, feed_pool, spill_to
from streams.stage_pool import StagePool


@dataclass(eq=False)
class Message:
    partition: int
    key: str
    generation_id: int = 1
    topic: str = "t"


@dataclass(eq=False)
class Event:
    message: Message


@dataclass
class Consumer:
    #: Messages taken and not acknowledged: Faust's revocation waits until this is empty.
    _unacked_messages: set[Message] = field(default_factory=set)
    #: Topic -> the longest wait a due feeder said its events may have (SafeConsumer's).
    expected_waits: dict[str, float] = field(default_factory=dict)

    def expect_waits(self, topic: str, seconds: float) -> None:
        self.expected_waits[topic] = seconds


@dataclass
class App:
    consumer_generation_id: int = 1
    flow_control: FlowControlEvent = field(
        default_factory=lambda: FlowControlEvent(initially_suspended=False)
    )
    consumer: Consumer = field(default_factory=Consumer)


@dataclass
class Stream:
    """What feed_pool uses of a Faust stream; sets the current event as Faust does per event."""

    events_in: list[Event]
    app: App = field(default_factory=App)
    acked: list[Event] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def noack(self) -> Stream:
        return self

    async def events(self) -> AsyncIterator[Event]:
        for event in self.events_in:
            _current_event.set(weakref.ref(event))  # type: ignore[arg-type]
            self.app.consumer._unacked_messages.add(event.message)  # taken
            yield event
        await self.done.wait()  # a stream never ends by itself; the test stops it

    async def ack(self, event: Event) -> None:
        self.acked.append(event)
        self.app.consumer._unacked_messages.discard(event.message)
        if len(self.acked) == len(self.events_in):
            self.done.set()


def test_each_job_sees_its_own_event_as_fausts_current_event() -> None:
    """A table write takes its partition from the current event: a job started from another
    job's task (the next of its key, or a freed slot) must still see its own event."""
    events = [Event(Message(partition=i % 3, key=f"r{i % 2}")) for i in range(8)]
    stream = Stream(events)
    seen: list[tuple[Event, Any]] = []
    release = asyncio.Event()

    async def handle(event: Any) -> None:
        await release.wait()  # every job's successor is started from this job's task
        seen.append((event, faust.current_event()))

    def place(event: Any) -> Place:
        return Place(key=event.message.key)

    async def main() -> None:
        pool = StagePool("test", max_running=2, max_waiting=100)
        feeding = asyncio.ensure_future(
            feed_pool(stream, pool, stream.app, place=place, handle=handle)
        )
        await asyncio.sleep(0)
        release.set()
        await asyncio.wait_for(stream.done.wait(), timeout=10)
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)

    asyncio.run(main())
    assert len(seen) == len(events)
    assert all(current is event for event, current in seen)
    assert sorted(map(id, stream.acked)) == sorted(map(id, events))


def test_a_revocation_drops_the_waiting_jobs_and_waits_only_for_the_running_one() -> None:
    """Faust suspends the flow, clears its queues, then waits for every taken message to be
    acknowledged: the pool's waiting jobs go, with their messages, and are never handled (the
    seek after the rebalance fetches them again). A clear that resumes the flow drops nothing."""
    events = [Event(Message(partition=0, key=f"r{i}")) for i in range(5)]
    stream = Stream(events)
    app = stream.app
    release = asyncio.Event()
    handled: list[Event] = []

    async def handle(event: Any) -> None:
        await release.wait()
        handled.append(event)

    async def main() -> None:
        pool = StagePool("test", max_running=1, max_waiting=100)
        feeding = asyncio.ensure_future(
            feed_pool(stream, pool, app, place=lambda e: Place(key=e.message.key), handle=handle)
        )
        for _ in range(10):
            await asyncio.sleep(0)
        assert (pool.in_progress, pool.waiting) == (1, 4)
        app.flow_control.resume()  # a clear while the flow runs: nothing dropped
        assert (pool.in_progress, pool.waiting) == (1, 4)
        app.flow_control.suspend()  # a revocation: Faust suspends, then clears
        app.flow_control.clear()
        assert (pool.in_progress, pool.waiting) == (1, 0)
        assert app.consumer._unacked_messages == {events[0].message}
        release.set()
        for _ in range(10):
            await asyncio.sleep(0)
        assert not app.consumer._unacked_messages  # Faust's wait_empty is over
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)

    asyncio.run(main())
    assert handled == [events[0]]
    assert stream.acked == [events[0]]


def test_a_rebalance_drops_the_older_generations_waiting_jobs_and_runs_the_new_ones() -> None:
    """Jobs of the generation the consumer left are dropped unstarted, never acknowledged (the
    seek fetches them again); each generation's events are judged by their own generation."""
    old = [Event(Message(partition=0, key=f"old{i}", generation_id=1)) for i in range(4)]
    new = [Event(Message(partition=0, key=f"new{i}", generation_id=2)) for i in range(3)]
    stream = Stream(old + new)
    app = stream.app
    rebalanced = asyncio.Event()
    release = asyncio.Event()
    handled: list[Event] = []

    async def events() -> AsyncIterator[Event]:
        for event in stream.events_in:
            if event is new[0]:
                await rebalanced.wait()
            yield event
        await stream.done.wait()

    stream.events = events  # type: ignore[method-assign]

    async def handle(event: Any) -> None:
        await release.wait()
        handled.append(event)

    async def main() -> None:
        pool = StagePool("test", max_running=1, max_waiting=100)
        feeding = asyncio.ensure_future(
            feed_pool(stream, pool, app, place=lambda e: Place(key=e.message.key), handle=handle)
        )
        for _ in range(10):
            await asyncio.sleep(0)
        assert (pool.in_progress, pool.waiting) == (1, 3)  # old[0] runs, the rest wait
        app.consumer_generation_id = 2
        rebalanced.set()
        for _ in range(10):
            await asyncio.sleep(0)
        assert pool.waiting == len(new)  # the old generation's waiting jobs are gone
        release.set()
        for _ in range(20):
            await asyncio.sleep(0)
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)

    asyncio.run(main())
    assert handled == [old[0], *new]  # the running one finishes; the seek refetches the rest
    assert all(event not in stream.acked for event in old[1:])
    assert all(event in stream.acked for event in new)


def _urgent_first(event: Any) -> Place:
    key = event.message.key
    return Place(rank=2 if key.startswith("h") else 1, key=key)


def test_two_streams_feed_one_pool_and_the_urgent_event_runs_before_the_backlog() -> None:
    """Generate's two agents (.requests and .requests.urgent) share one pool: an urgent event
    taken while a NORMAL backlog waits runs next, and each stream acks its own events."""
    app = App()
    backlog = [Event(Message(partition=0, key=f"n{i}")) for i in range(5)]
    urgent = [Event(Message(partition=0, key="h0"))]
    normal_stream, urgent_stream = Stream(backlog, app=app), Stream(urgent, app=app)
    release = asyncio.Event()
    handled: list[Event] = []

    async def handle(event: Any) -> None:
        await release.wait()
        handled.append(event)

    async def main() -> None:
        pool = StagePool("test", max_running=1, max_waiting=100)
        normal = asyncio.ensure_future(
            feed_pool(normal_stream, pool, app, place=_urgent_first, handle=handle)
        )
        for _ in range(10):
            await asyncio.sleep(0)
        quick = asyncio.ensure_future(
            feed_pool(urgent_stream, pool, app, place=_urgent_first, handle=handle)
        )
        for _ in range(10):
            await asyncio.sleep(0)
        assert (pool.in_progress, pool.waiting) == (1, 5)
        release.set()
        for _ in range(40):
            await asyncio.sleep(0)
        await asyncio.gather(quick, normal)  # each stream ends once all its events are acked
        assert pool._closed  # the last feeder left

    asyncio.run(main())
    assert handled == [backlog[0], urgent[0], *backlog[1:]]
    assert urgent_stream.acked == urgent
    assert normal_stream.acked == backlog


def test_a_revocation_drops_what_waits_from_both_streams() -> None:
    """Each agent registers its own flow-control queue; either clear drops the shared pool's
    waiting jobs of both topics, with their messages; the running job ends and acks."""
    app = App()
    backlog = [Event(Message(partition=0, key=f"n{i}")) for i in range(3)]
    urgent = [Event(Message(partition=0, key=f"h{i}")) for i in range(2)]
    normal_stream, urgent_stream = Stream(backlog, app=app), Stream(urgent, app=app)
    release = asyncio.Event()
    handled: list[Event] = []

    async def handle(event: Any) -> None:
        await release.wait()
        handled.append(event)

    async def main() -> None:
        pool = StagePool("test", max_running=1, max_waiting=100)
        feeders = [
            asyncio.ensure_future(feed_pool(s, pool, app, place=_urgent_first, handle=handle))
            for s in (normal_stream, urgent_stream)
        ]
        for _ in range(10):
            await asyncio.sleep(0)
        assert (pool.in_progress, pool.waiting) == (1, 4)
        app.flow_control.suspend()
        app.flow_control.clear()
        assert pool.waiting == 0
        assert app.consumer._unacked_messages == {backlog[0].message}
        release.set()
        for _ in range(10):
            await asyncio.sleep(0)
        assert not app.consumer._unacked_messages  # Faust's wait_empty is over
        for feeder in feeders:
            feeder.cancel()
        await asyncio.gather(*feeders, return_exceptions=True)

    asyncio.run(main())
    assert handled == [backlog[0]]


def test_streams_take_buffered_events_in_batches_yielding_every_per_pass() -> None:
    """Faust's compiled stream iterator awaits its module's ``sleep(0)`` before each event;
    installed, only every ``per_pass``-th of those gives the event loop a turn."""
    from faust._cython import streams as compiled

    from streams.pooled_stage import take_events_in_batches

    assert take_events_in_batches(4)
    sleep = compiled.sleep
    assert take_events_in_batches(8)  # installed once, reconfigured
    assert compiled.sleep is sleep

    async def go() -> tuple[int, float]:
        passes = 0

        async def ticker() -> None:
            nonlocal passes
            while True:
                passes += 1
                await asyncio.sleep(0)

        task = asyncio.ensure_future(ticker())
        await asyncio.sleep(0)
        before = passes
        for _ in range(80):
            await compiled.sleep(0)
        turns = passes - before
        started = time.monotonic()
        await compiled.sleep(0.05)  # a real delay still sleeps
        slept = time.monotonic() - started
        task.cancel()
        return turns, slept

    turns, slept = asyncio.run(go())
    take_events_in_batches(1)  # back to a turn per event for the other tests
    assert turns == 80 // 8
    assert slept >= 0.04


def _due_in(seconds: dict[str, float]) -> Any:
    start = time.time()
    return lambda event: start + seconds[event.message.key]


def test_deferred_events_go_to_the_pool_when_due_soonest_first_holding_back_no_other_topic() -> (
    None
):
    """The deliver stage's ``.deliver.deferred`` feeder: an event waits until due (here d0
    written before d1 but due later), and meanwhile another topic's events run at once."""
    app = App()
    deferred = [
        Event(Message(partition=0, key=k, topic="x.deliver.deferred")) for k in ("d0", "d1")
    ]
    approved = [Event(Message(partition=0, key="a0", topic="x.approved"))]
    deferred_stream, approved_stream = Stream(deferred, app=app), Stream(approved, app=app)
    handled: list[str] = []

    async def handle(event: Any) -> None:
        handled.append(event.message.key)

    def place(event: Any) -> Place:
        return Place(key=event.message.key)

    async def main() -> None:
        pool = StagePool("test", max_running=4, max_waiting=100)
        due = _due_in({"d0": 0.4, "d1": 0.2})
        feeders = [
            asyncio.ensure_future(
                feed_pool(
                    deferred_stream,
                    pool,
                    app,
                    place=place,
                    handle=handle,
                    due=due,
                    longest_wait_s=300.0,
                )
            ),
            asyncio.ensure_future(
                feed_pool(approved_stream, pool, app, place=place, handle=handle)
            ),
        ]
        await asyncio.sleep(0.05)
        assert handled == ["a0"]
        assert deferred_stream.acked == []
        await asyncio.wait_for(asyncio.gather(*feeders), timeout=5)

    asyncio.run(main())
    assert handled == ["a0", "d1", "d0"]
    # its held events are not reported as stalled within that wait; the other topic's are
    assert app.consumer.expected_waits == {"x.deliver.deferred": 300.0}
    assert deferred_stream.acked == [deferred[1], deferred[0]]


def test_a_due_feeder_holds_at_most_max_held_events() -> None:
    """Nothing unbounded in memory: past ``max_held`` the feeder stops taking (Faust's buffer
    pressure then stops fetching its partitions); what it holds goes once due."""
    events = [Event(Message(partition=0, key=f"d{i}")) for i in range(4)]
    stream = Stream(events)
    app = stream.app
    handled: list[str] = []

    async def handle(event: Any) -> None:
        handled.append(event.message.key)

    async def main() -> None:
        pool = StagePool("test", max_running=4, max_waiting=100)
        due = _due_in({f"d{i}": 0.2 for i in range(4)})
        feeding = asyncio.ensure_future(
            feed_pool(
                stream, pool, app, place=lambda e: Place(), handle=handle, due=due, max_held=2
            )
        )
        await asyncio.sleep(0.05)
        assert handled == []
        assert len(app.consumer._unacked_messages) == 3  # two held, one in hand
        await asyncio.wait_for(feeding, timeout=5)

    asyncio.run(main())
    assert handled == ["d0", "d1", "d2", "d3"]


def test_a_revocation_drops_the_events_held_until_due() -> None:
    """Faust's revocation waits for every taken event to be acknowledged: a held event due in
    minutes must not hold it; the seek after the rebalance fetches it again."""
    events = [Event(Message(partition=0, key=f"d{i}")) for i in range(3)]
    stream = Stream(events)
    app = stream.app
    handled: list[str] = []

    async def handle(event: Any) -> None:
        handled.append(event.message.key)

    async def main() -> None:
        pool = StagePool("test", max_running=4, max_waiting=100)
        due = _due_in({f"d{i}": 600.0 for i in range(3)})
        feeding = asyncio.ensure_future(
            feed_pool(stream, pool, app, place=lambda e: Place(), handle=handle, due=due)
        )
        await asyncio.sleep(0.05)
        assert len(app.consumer._unacked_messages) == 3
        app.flow_control.suspend()
        app.flow_control.clear()
        assert not app.consumer._unacked_messages
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)

    asyncio.run(main())
    assert handled == []


def test_a_spilled_event_is_written_then_acknowledged_and_never_handled() -> None:
    events = [Event(Message(partition=0, key=f"r{i}")) for i in range(3)]
    stream = Stream(events)
    app = stream.app
    release = asyncio.Event()
    handled: list[str] = []
    written: list[str] = []

    async def handle(event: Any) -> None:
        await release.wait()
        handled.append(event.message.key)

    async def write(event: Any) -> None:
        assert event not in stream.acked  # acknowledged only after the write
        written.append(event.message.key)

    async def main() -> None:
        pool = StagePool(
            "test",
            max_running=4,
            max_waiting=100,
            lane_limit=lambda lane: 1,
            lane_max_waiting=lambda lane: 1,
            spill=spill_to(write),
        )
        feeding = asyncio.ensure_future(
            feed_pool(stream, pool, app, place=lambda e: Place(key=e.message.key, lane="dam"),
                      handle=handle)
        )  # fmt: skip
        await asyncio.sleep(0.01)
        assert written == ["r2"]
        assert stream.acked == [events[2]]
        release.set()
        await asyncio.wait_for(feeding, timeout=5)

    asyncio.run(main())
    assert handled == ["r0", "r1"]
