"""A very slow destination past its bound: its deliveries are deferred to Kafka, not held.

Tenant A's assets go to an HTTP DAM answering each PUT after 4 s, one at a time; the deliver
stage may hold 3 of them waiting (``deliver_lane_max_waiting``) in a pool whose waiting room is
8 (``stage_max_waiting``); the filesystem may run 32 at once, so B's never wait. Before issue
16's deferrals, A's 12 assets filled that room and the stage took no event for any tenant
until the DAM had taken 4 of them (16 s, measured with the spill turned off); now the ones past
the bound go to ``.deliver.deferred`` (and again, one count further, while the DAM is still
slow when they come due) and B's filesystem deliveries complete while A's wait. Once the DAM
answers at once again, every A asset is delivered, each with exactly one completion.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agents.deliver.deferral import Deferral, deferral_of
from assetline.dev.child_worker import WorkerProcess
from assetline.timeline.entry import entry_from
from assetline.timeline.follow import line_topic_kinds
from schemas.records import CompletionStatus
from streams.codecs import Codecs
from streams.settings import Settings
from streams.topics import TopicNames
from tests.integration.dam_line import (
    FS_TENANT,
    SLOW_TENANT,
    dam_line,
    image_requests,
    once_each,
    warm_up,
)
from tests.integration.helpers import read_topic, submit_requests, worker_metric
from tests.support.dam_server import dam_server

pytestmark = pytest.mark.integration

A_COUNT = 12
B_COUNT = 20


def _slow_dam_line(line_settings: Settings, dam_url: str, tmp_path: Path) -> Settings:
    """A's assets to the DAM (one PUT at a time), B's to disk; small bounds, short deferrals."""
    return dam_line(
        line_settings,
        dam_url,
        tmp_path,
        dam_in_flight=1,
        local_in_flight=32,
        stage_max_waiting=8,
        deliver_lane_max_waiting=3,
        deliver_defer_base_s=1.0,
        deliver_defer_max_s=2.0,
    )


def test_a_slow_destinations_overflow_is_deferred_and_delivered_once_when_it_recovers(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    tmp_path: Path,
) -> None:
    with dam_server(delay_s=4.0) as dam:
        settings = _slow_dam_line(line_settings, dam.url, tmp_path)
        run = uuid.uuid4().hex[:8]
        worker = start_worker(settings)
        warm_up(settings, run)

        slow = image_requests(run, SLOW_TENANT, A_COUNT)
        fast = image_requests(run, FS_TENANT, B_COUNT)
        asyncio.run(submit_requests(settings, slow))
        asyncio.run(submit_requests(settings, fast))
        started = time.monotonic()
        done_fast = once_each(settings, [r.request_id for r in fast], timeout=60)
        b_seconds = time.monotonic() - started
        assert all(d.status is CompletionStatus.DELIVERED for d in done_fast.values())
        # B finished while the DAM was still on A's first assets (one per 4 s); held back by
        # A, B waited for 4 of them (the pool's room, 8, minus what A has waiting) at least.
        a_stored = sum(u.status == 201 for u in dam.uploads)
        assert a_stored <= 2, (a_stored, b_seconds, worker.log_tail())

        # Due after 1 s while the DAM is still slow, they are deferred again, one count further.
        names = TopicNames.with_prefix(settings.topic_prefix)
        records: list[Any] = []
        deferrals: list[Deferral] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and max((d.count for d in deferrals), default=0) < 2:
            records = asyncio.run(
                read_topic(settings, names.deliver_deferred, min_messages=1, timeout=5)
            )
            deferrals = [deferral_of(r.headers) for r in records]
        slow_ids = {r.request_id for r in slow}
        assert records, worker.log_tail()
        assert {r.key.decode() for r in records} <= slow_ids  # only A's assets were deferred
        assert {d.destination for d in deferrals} == {"dam"}
        assert {d.source for d in deferrals} == {names.approved}
        assert all(d.due_ms is not None and d.count >= 1 for d in deferrals)
        assert max(d.count for d in deferrals) >= 2, worker.log_tail()
        deferred_total = worker_metric(
            settings.web_port, "assetline_deliveries_deferred_total", destination="dam"
        )
        assert deferred_total is not None
        assert deferred_total >= 1
        waiting = worker_metric(
            settings.web_port, "assetline_deliver_lane_waiting", destination="dam"
        )
        assert waiting is not None
        assert waiting <= 3  # the bound
        # The timeline (console, assetline status) reads the topic: "deferred for destination dam".
        kind = line_topic_kinds(settings)[names.deliver_deferred]
        first = records[0]
        (entry,) = entry_from(
            kind, first.key, first.value, first.headers, first.timestamp, codecs=Codecs.load()
        )
        assert entry.summary.startswith("deferred for destination dam"), entry

        dam.delay_s = 0.0  # the destination is back
        done_slow = once_each(settings, sorted(slow_ids), timeout=60)
        assert all(d.status is CompletionStatus.DELIVERED for d in done_slow.values()), [
            d.reasons for d in done_slow.values()
        ]
        assert len(dam.objects) == A_COUNT
        assert sum(u.status == 201 for u in dam.uploads) == A_COUNT  # each PUT stored once
    print(
        f"\nB's {B_COUNT} filesystem deliveries beside the slow DAM: {b_seconds:.1f} s; "
        f"A assets stored by then: {a_stored}; deferral records: {len(records)}, "
        f"highest count {max(d.count for d in deferrals)}"
    )


def test_a_worker_killed_with_deliveries_deferred_and_held_loses_and_doubles_nothing(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    tmp_path: Path,
) -> None:
    """Killed while A's overflow sits on .deliver.deferred (some of it held until due, some
    being written), the next worker takes over: every request still ends in exactly one
    completion, and every A asset is stored at the DAM once it is back."""
    with dam_server(delay_s=4.0) as dam:
        settings = _slow_dam_line(line_settings, dam.url, tmp_path)
        run = uuid.uuid4().hex[:8]
        first = start_worker(settings)
        warm_up(settings, run)

        slow = image_requests(run, SLOW_TENANT, A_COUNT)
        fast = image_requests(run, FS_TENANT, B_COUNT)
        asyncio.run(submit_requests(settings, slow + fast))
        names = TopicNames.with_prefix(settings.topic_prefix)
        records: list[Any] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and len({r.key for r in records}) < 3:
            records = asyncio.run(
                read_topic(settings, names.deliver_deferred, min_messages=1, timeout=2)
            )
        assert len({r.key for r in records}) >= 3, first.log_tail()
        first.kill()  # no clean shutdown: whatever was held, parked or being written is cut off

        dam.delay_s = 0.0
        second = start_worker(settings)
        ids = [r.request_id for r in slow + fast]
        done = once_each(settings, ids, timeout=120)
        assert all(d.status is CompletionStatus.DELIVERED for d in done.values()), (
            [d.reasons for d in done.values()],
            second.log_tail(),
        )
        stored = dam.objects
        for request in slow:
            location = done[request.request_id].location
            assert location is not None
            path = "/" + location.split("/", 3)[3]  # http://host:port/upload/... -> /upload/...
            assert path in stored, (location, sorted(stored))
