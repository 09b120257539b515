"""Concurrent delivery on a real broker: a slow DAM holds back only its own tenant's assets.

Tenant A's assets go to an HTTP DAM that answers each PUT after 1 s (at most 2 at once, its
``max_in_flight``); tenant B's go to the filesystem. Submitted together, B's 30 requests all
complete while A's are still trickling in, A's all complete too, and every request has exactly
one completion on ``.completed``. The test prints B's completion times alone and beside A.
"""

from __future__ import annotations

import asyncio
import statistics
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest

from assetline.dev.child_worker import WorkerProcess
from schemas.records import (
    AssetCompleted,
    CompletionStatus,
)
from streams.settings import Settings
from tests.integration.dam_line import (
    FS_TENANT,
    SLOW_TENANT,
    dam_line,
    image_requests,
    once_each,
    warm_up,
)
from tests.integration.helpers import submit_requests
from tests.support.dam_server import dam_server

pytestmark = pytest.mark.integration

A_COUNT = 20
B_COUNT = 30


def _seconds(done: AssetCompleted, since: datetime) -> float:
    return (done.completed_at - since).total_seconds()


def test_a_slow_destination_does_not_hold_back_another_tenants_deliveries(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    tmp_path: Path,
) -> None:
    with dam_server(delay_s=1.0) as dam:
        settings = dam_line(line_settings, dam.url, tmp_path, dam_in_flight=2)
        run = uuid.uuid4().hex[:8]
        worker = start_worker(settings)
        warm_up(settings, run)

        # B alone first (the worker warmed up): its completion times without the slow DAM.
        alone = image_requests(f"{run}-alone", FS_TENANT, B_COUNT)
        asyncio.run(submit_requests(settings, alone))
        done_alone = once_each(settings, [r.request_id for r in alone], timeout=120)

        # Then A's slow assets and B's together, A's first in every partition.
        slow = image_requests(run, SLOW_TENANT, A_COUNT)
        fast = image_requests(run, FS_TENANT, B_COUNT)
        asyncio.run(submit_requests(settings, slow))
        asyncio.run(submit_requests(settings, fast))
        done_fast = once_each(settings, [r.request_id for r in fast], timeout=120)
        done_slow = once_each(settings, [r.request_id for r in slow], timeout=120)

        assert all(d.status is CompletionStatus.DELIVERED for d in done_fast.values())
        assert all(d.status is CompletionStatus.DELIVERED for d in done_slow.values()), [
            d.reasons for d in done_slow.values()
        ]
        # B was done while A still trickled: most of A's assets were delivered after B's last.
        b_last = max(d.completed_at for d in done_fast.values())
        a_before = sum(d.completed_at <= b_last for d in done_slow.values())
        assert a_before <= A_COUNT // 2, (a_before, worker.log_tail())
        # Each A asset was PUT once (stored, 201), and never more than 2 at once (its limit).
        stored = [u for u in dam.uploads if u.status == 201]
        assert len(stored) == A_COUNT == len(dam.objects)
        assert dam.peak_in_flight == 2

    b_start = min(r.created_at for r in fast)
    a_start = min(r.created_at for r in slow)
    alone_start = min(r.created_at for r in alone)
    solo = [_seconds(d, alone_start) for d in done_alone.values()]
    beside = [_seconds(d, b_start) for d in done_fast.values()]
    a_times = [_seconds(d, a_start) for d in done_slow.values()]
    print(
        f"\nB alone: median {statistics.median(solo):.2f} s, last {max(solo):.2f} s"
        f"\nB beside A's slow DAM: median {statistics.median(beside):.2f} s, "
        f"last {max(beside):.2f} s"
        f"\nA (1 s per PUT, 2 at once): median {statistics.median(a_times):.2f} s, "
        f"last {max(a_times):.2f} s; A delivered before B's last: {a_before} of {A_COUNT}"
    )
