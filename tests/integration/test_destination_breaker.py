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
from pydantic import SecretStr

from agents.deliver.deferral import deferral_of
from assetline.dev.child_worker import WorkerProcess
from schemas.records import CompletionStatus
from streams.settings import Settings
from streams.topics import TopicNames
from tests.integration.helpers import read_topic, submit_requests, worker_metric
from tests.integration.test_concurrent_delivery import _requests
from tests.integration.test_deferred_delivery import FS_TENANT, SLOW_TENANT, _once_each
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
        destinations = tmp_path / "destinations.yaml"
        destinations.write_text(
            f"""
destinations:
  local: {{type: filesystem, root: "{tmp_path / "delivery"}"}}
  dam: {{type: http, url: "{dam.url}/upload/{{tenant}}/{{name}}", auth_header: Authorization,
        secret: dam, max_in_flight: 1}}
default: local
routes:
  - {{tenant: {SLOW_TENANT}, destination: dam}}
retry: {{attempts: 1, base_delay_s: 0.01, max_delay_s: 0.01}}
"""
        )
        settings = line_settings.model_copy(
            update={
                "destinations_file": destinations,
                "api_keys": {"dam": SecretStr("Bearer dam-secret")},
                "deliver_breaker_failures": FAILURES,
                "deliver_breaker_reset_s": 3.0,
                "deliver_defer_base_s": 0.5,
                "deliver_defer_max_s": 2.0,
            }
        )
        run = uuid.uuid4().hex[:8]
        worker = start_worker(settings)
        warm = _requests(f"{run}-warm", FS_TENANT, 1)  # partitions assigned, tables recovered
        asyncio.run(submit_requests(settings, warm))
        _once_each(settings, [warm[0].request_id], timeout=120)

        dam.fail_status = 503  # the DAM is down
        dead = _requests(run, SLOW_TENANT, COUNT)
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
        done = _once_each(settings, sorted(ids), timeout=40)
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
