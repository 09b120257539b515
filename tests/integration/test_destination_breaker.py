"""A dead destination opens its circuit breaker: its next deliveries wait on Kafka, not FAILED.

Tenant A's assets go to an HTTP DAM answering 503 to every PUT, one attempt each (no retries),
and the stage opens a destination's breaker after 2 consecutive failures. The assets tried
before it opened (and any probe let through while the DAM is still down) end FAILED, as a
delivery that was tried does; the others are deferred to ``.deliver.deferred`` without a PUT.
Once the DAM answers 201 again a probe gets through, the breaker closes, and every remaining
asset is delivered with exactly one completion.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agents.deliver.deferral import deferral_of
from assetline.dev.child_worker import WorkerProcess
from schemas.records import CompletionStatus
from streams.settings import Settings
from streams.topics import TopicNames
from tests.integration.dam_line import (
    SLOW_TENANT,
    dam_line,
    image_requests,
    once_each,
    warm_up,
)
from tests.integration.helpers import read_topic, submit_requests, worker_metric
from tests.support.dam_server import dam_server

pytestmark = pytest.mark.integration

COUNT = 10
FAILURES = 2


def test_a_dead_destination_opens_its_breaker_and_its_assets_wait_until_it_is_back(
    line_settings: Settings,
    start_worker: Callable[[Settings], WorkerProcess],
    tmp_path: Path,
) -> None:
    with dam_server() as dam:
        settings = dam_line(
            line_settings,
            dam.url,
            tmp_path,
            dam_in_flight=1,
            retry_attempts=1,
            deliver_breaker_failures=FAILURES,
            deliver_breaker_reset_s=3.0,
            deliver_defer_base_s=0.5,
            deliver_defer_max_s=2.0,
        )
        run = uuid.uuid4().hex[:8]
        worker = start_worker(settings)
        warm_up(settings, run)

        dam.fail_status = 503  # the DAM is down
        dead = image_requests(run, SLOW_TENANT, COUNT)
        ids = {r.request_id for r in dead}
        asyncio.run(submit_requests(settings, dead))

        names = TopicNames.with_prefix(settings.topic_prefix)
        records: list[Any] = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len({r.key for r in records}) < COUNT - FAILURES:
            records = asyncio.run(
                read_topic(settings, names.deliver_deferred, min_messages=1, timeout=2)
            )
        deferred = {r.key.decode() for r in records}
        tried = [u for u in dam.uploads if u.status == 503]
        # Opened after the first 2: the rest wait on Kafka instead of each being tried.
        assert len(deferred) >= COUNT - FAILURES, (len(deferred), len(tried), worker.log_tail())
        assert deferred <= ids
        assert {deferral_of(r.headers).destination for r in records} == {"dam"}
        assert len(tried) <= FAILURES + 1, len(tried)  # + a probe, if one came due already
        opened = worker_metric(
            settings.web_port, "assetline_destination_breaker_open", destination="dam"
        )
        assert opened == 1
        assert (
            worker_metric(
                settings.web_port, "assetline_destination_breaker_open", destination="local"
            )
            == 0
        )

        dam.fail_status = None  # the DAM is back
        done = once_each(settings, sorted(ids), timeout=40)
        failed = {rid for rid, d in done.items() if d.status is CompletionStatus.FAILED}
        delivered = {rid for rid, d in done.items() if d.status is CompletionStatus.DELIVERED}
        assert failed | delivered == ids, [d.reasons for d in done.values()]
        # Only assets that were PUT (and answered 503) failed: one PUT each, no retries.
        refused = [u for u in dam.uploads if u.status == 503]
        assert len(failed) == len(refused), (len(failed), len(refused))
        assert FAILURES <= len(failed) <= FAILURES + 2, failed
        assert len(dam.objects) == len(delivered)
        assert sum(u.status == 201 for u in dam.uploads) == len(delivered)
        assert (
            worker_metric(
                settings.web_port, "assetline_destination_breaker_open", destination="dam"
            )
            == 0
        )
        log = worker.log_path.read_text(errors="replace")
        assert "dam is failing: its circuit breaker opened" in log
        assert "dam answers again: its circuit breaker closed" in log
    print(
        f"\n{COUNT} assets to a DAM answering 503: {len(failed)} FAILED (tried), "
        f"{len(deferred)} deferred, {len(delivered)} delivered once it was back"
    )
