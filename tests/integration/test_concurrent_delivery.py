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
from pydantic import SecretStr

from assetline.client import await_completions
from assetline.dev.child_worker import WorkerProcess
from schemas.records import (
    AssetCompleted,
    AssetKind,
    CompletionStatus,
    Constraints,
    GenerationRequest,
)
from streams.settings import Settings
from tests.integration.helpers import submit_requests
from tests.support.dam_server import dam_server

pytestmark = pytest.mark.integration

SLOW_TENANT = "slow-dam-co"
FS_TENANT = "fs-co"
A_COUNT = 20
B_COUNT = 30


def _requests(run: str, tenant: str, count: int) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            request_id=f"{run}-{tenant}-{i:03d}",
            idempotency_key=f"{run}-{tenant}-{i:03d}",
            tenant=tenant,
            campaign_id="launch",
            kind=AssetKind.IMAGE,  # one PUT each: the label is inside the PNG, no sidecar
            prompt_template="Hero for ${p}",
            variables={"p": f"persona {i}"},
            constraints=Constraints(width=64, height=64, format="png"),
        )
        for i in range(count)
    ]


def _seconds(done: AssetCompleted, since: datetime) -> float:
    return (done.completed_at - since).total_seconds()


def _once_each(settings: Settings, ids: list[str], timeout: float) -> dict[str, AssetCompleted]:
    seen = asyncio.run(await_completions(settings, ids, timeout=timeout))
    assert set(seen) == set(ids), f"{len(set(ids) - set(seen))} of {len(ids)} did not complete"
    doubled = {rid: len(events) for rid, events in seen.items() if len(events) != 1}
    assert not doubled, f"completed more than once: {doubled}"
    return {rid: events[0] for rid, events in seen.items()}


def test_a_slow_destination_does_not_hold_back_another_tenants_deliveries(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    tmp_path: Path,
) -> None:
    with dam_server(delay_s=1.0) as dam:
        destinations = tmp_path / "destinations.yaml"
        destinations.write_text(
            f"""
destinations:
  local: {{type: filesystem, root: "{tmp_path / "delivery"}"}}
  dam: {{type: http, url: "{dam.url}/upload/{{tenant}}/{{name}}", auth_header: Authorization,
        secret: dam, max_in_flight: 2}}
default: local
routes:
  - {{tenant: {SLOW_TENANT}, destination: dam}}
"""
        )
        settings = line_settings.model_copy(
            update={
                "destinations_file": destinations,
                "api_keys": {"dam": SecretStr("Bearer dam-secret")},
            }
        )
        run = uuid.uuid4().hex[:8]
        worker = start_worker(settings)
        warm = _requests(f"{run}-warm", FS_TENANT, 1)  # partitions assigned, tables recovered
        asyncio.run(submit_requests(settings, warm))
        _once_each(settings, [warm[0].request_id], timeout=120)

        # B alone first (the worker warmed up): its completion times without the slow DAM.
        alone = _requests(f"{run}-alone", FS_TENANT, B_COUNT)
        asyncio.run(submit_requests(settings, alone))
        done_alone = _once_each(settings, [r.request_id for r in alone], timeout=120)

        # Then A's slow assets and B's together, A's first in every partition.
        slow = _requests(run, SLOW_TENANT, A_COUNT)
        fast = _requests(run, FS_TENANT, B_COUNT)
        asyncio.run(submit_requests(settings, slow))
        asyncio.run(submit_requests(settings, fast))
        done_fast = _once_each(settings, [r.request_id for r in fast], timeout=120)
        done_slow = _once_each(settings, [r.request_id for r in slow], timeout=120)

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
