"""A broker outage under a running worker costs a handful of log lines, and the line recovers.

Before streams/log_limits.py a 65 s outage wrote 26,425 lines (3.3 MB), ~400 aiokafka ERROR
lines a second. The broker here is the test's own (stopped and started again), not the
session's, which other tests share.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from assetline.client import await_completions
from assetline.dev.broker import LocalBroker
from assetline.dev.child_worker import WorkerProcess
from schemas.records import AssetKind, CompletionStatus, Constraints, GenerationRequest
from streams.settings import Settings
from tests.integration.helpers import submit_requests
from tests.support import brokers
from tests.support.brokers import line_settings_for

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

OUTAGE_S = 10.0  # > the 6 s session timeout and 2x the limiter's 5 s recovery quiet
MAX_OUTAGE_LINES = 20


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    with brokers.own_broker(tmp_path / "kafka") as broker:
        yield broker


def _requests(run: str, count: int) -> list[GenerationRequest]:
    return [
        GenerationRequest(
            request_id=f"{run}-{i}",
            idempotency_key=f"{run}-{i}",
            tenant="acme",
            campaign_id="outage",
            kind=AssetKind.TEXT,
            prompt_template="Headline number ${n}",
            variables={"n": str(i)},
            constraints=Constraints(max_chars=120),
        )
        for i in range(count)
    ]


def _delivered(settings: Settings, requests: list[GenerationRequest]) -> None:
    asyncio.run(submit_requests(settings, requests))
    ids = [r.request_id for r in requests]
    seen = asyncio.run(await_completions(settings, ids, timeout=120))
    assert set(seen) == set(ids)
    assert all(events[-1].status == CompletionStatus.DELIVERED for events in seen.values()), seen


def _wait_quiet(path: Path, quiet_s: float, timeout: float) -> int:
    """Number of lines once the log has not grown for ``quiet_s`` (start-up chatter done)."""
    deadline = time.monotonic() + timeout
    count, since = -1, time.monotonic()
    while time.monotonic() < deadline:
        now_count = len(path.read_text(errors="replace").splitlines())
        if now_count != count:
            count, since = now_count, time.monotonic()
        elif time.monotonic() - since >= quiet_s:
            return count
        time.sleep(0.2)
    return count


def _wait_for_line(path: Path, text: str, after: int, timeout: float) -> int:
    """Index of the first line after ``after`` that contains ``text``."""
    deadline = time.monotonic() + timeout
    while True:
        lines = path.read_text(errors="replace").splitlines()
        for index in range(after, len(lines)):
            if text in lines[index]:
                return index
        if time.monotonic() >= deadline:
            raise AssertionError(f"no {text!r} in the worker log within {timeout}s")
        time.sleep(0.5)


def test_a_broker_outage_is_a_few_lines_and_the_worker_completes_afterwards(
    own_broker: LocalBroker,
    tmp_path: Path,
    start_worker: Callable[[Settings], WorkerProcess],
) -> None:
    # the recovery line is INFO; WARNING/ERROR alone would be fewer lines
    settings = line_settings_for(own_broker.bootstrap, tmp_path, log_level="info")
    uid = settings.app_id.removeprefix("test-")
    worker = start_worker(settings)
    _delivered(settings, _requests(f"{uid}-before", 3))

    mark = _wait_quiet(worker.log_path, quiet_s=3.0, timeout=60)
    own_broker.down()
    time.sleep(OUTAGE_S)
    own_broker.up(timeout=120)
    recovered = _wait_for_line(worker.log_path, "Kafka reachable again", mark, timeout=120)

    # everything from the broker's stop to the recovery line (the broker's controlled shutdown
    # can make a heartbeat fail a moment before the first connection error)
    outage = worker.log_path.read_text(errors="replace").splitlines()[mark : recovered + 1]
    shown = "\n".join(outage)
    assert len(outage) < MAX_OUTAGE_LINES, f"{len(outage)} lines for one outage:\n{shown}"
    assert sum("Kafka unreachable (" in line for line in outage) == 1, shown
    assert sum("Kafka reachable again" in line for line in outage) == 1, shown
    assert "Logging error" not in shown
    # the first line of the cause that floods (~200 a second) is there, not its repeats: one
    # line per error type it comes with (refused connect, closed connection); the outage WARNING
    # may quote one of them as its cause and is not counted
    client_lines = [line for line in outage if "Kafka unreachable (" not in line]
    assert 1 <= sum("Unable connect to node" in line for line in client_lines) <= 2, shown

    _delivered(settings, _requests(f"{uid}-after", 3))
    assert worker.alive(), worker.log_tail()
