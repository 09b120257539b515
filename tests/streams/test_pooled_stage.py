"""feed_pool: events acknowledged only once handled, and each job sees its own current event."""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.streams import _current_event

from streams.pooled_stage import Place, feed_pool
from streams.stage_pool import StagePool


@dataclass
class Message:
    partition: int
    key: str
    generation_id: int = 1


@dataclass(eq=False)
class Event:
    message: Message


@dataclass
class Stream:
    """What feed_pool uses of a Faust stream; sets the current event as Faust does per event."""

    events_in: list[Event]
    acked: list[Event] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def noack(self) -> Stream:
        return self

    async def events(self) -> AsyncIterator[Event]:
        for event in self.events_in:
            _current_event.set(weakref.ref(event))  # type: ignore[arg-type]
            yield event
        await self.done.wait()  # a stream never ends by itself; the test stops it

    async def ack(self, event: Event) -> None:
        self.acked.append(event)
        if len(self.acked) == len(self.events_in):
            self.done.set()


@dataclass
class App:
    consumer_generation_id: int = 1


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
        feeding = asyncio.ensure_future(feed_pool(stream, pool, App(), place=place, handle=handle))
        await asyncio.sleep(0)
        release.set()
        await asyncio.wait_for(stream.done.wait(), timeout=10)
        feeding.cancel()
        await asyncio.gather(feeding, return_exceptions=True)

    asyncio.run(main())
    assert len(seen) == len(events)
    assert all(current is event for event, current in seen)
    assert sorted(map(id, stream.acked)) == sorted(map(id, events))
