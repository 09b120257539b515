"""/healthz, /readyz and the lag gauge on a real worker process and a broker this test owns.

The broker is this module's own (stopped and started again mid-test; the session's broker is
shared). The probe runs with the default settings (a check every 5 s, 3 s per check), so the
printed durations are what a deployment with defaults gets; the issue's target is /readyz
reflecting a broker loss within 15 s.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from assetline.client import await_completions
from assetline.dev.broker import LocalBroker, free_ports
from assetline.dev.child_worker import WorkerProcess
from streams.settings import Settings
from streams.topics import TopicNames
from tests.integration.helpers import mixed_requests, submit_requests
from tests.support import brokers
from tests.support.brokers import line_settings_for

pytestmark = pytest.mark.integration

StartWorker = Callable[[Settings], WorkerProcess]
BURST = 300
#: The issue's target for /readyz to reflect a broker loss.
BROKER_LOSS_TARGET_S = 15.0


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    """A broker only this module uses, so stopping it disturbs no other test."""
    with brokers.own_broker(tmp_path_factory.mktemp("health-kafka")) as broker:
        yield broker


def _get(port: int, path: str) -> tuple[int, Any, float]:
    """(status, JSON body or None, seconds the answer took); status 0 = no answer."""
    start = time.monotonic()
    try:
        response = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5)
    except httpx.HTTPError:
        return 0, None, time.monotonic() - start
    took = time.monotonic() - start
    try:
        body = response.json()
    except ValueError:
        body = None
    return response.status_code, body, took


def _wait_readyz(
    port: int, want: int, worker: WorkerProcess, timeout: float
) -> tuple[float, list[tuple[int, Any]], float]:
    """Poll /readyz until it answers ``want``: (seconds taken, other answers seen, slowest)."""
    start = time.monotonic()
    seen: list[tuple[int, Any]] = []
    slowest = 0.0
    while time.monotonic() - start < timeout:
        assert worker.alive(), worker.log_tail()
        status, body, took = _get(port, "/readyz")
        slowest = max(slowest, took)
        if status == want:
            return time.monotonic() - start, seen, slowest
        reason = body.get("reason") if isinstance(body, dict) else None
        if not seen or (seen[-1][0], seen[-1][1] and seen[-1][1].get("reason")) != (status, reason):
            seen.append((status, body))  # each change of status or reason, once
        time.sleep(0.2)
    raise AssertionError(
        f"/readyz never answered {want} in {timeout}s; seen {seen[-5:]}\n{worker.log_tail()}"
    )


def _scrape(port: int, topic: str) -> tuple[dict[int, float], dict[str, float]]:
    """(lag per partition of ``topic``, queue depth per stage) from /metrics."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    lags: dict[int, float] = {}
    depths: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if family.name == "assetline_consumer_lag" and sample.labels["topic"] == topic:
                lags[int(sample.labels["partition"])] = sample.value
            elif family.name == "assetline_stage_queue_depth":
                depths[sample.labels["stage"]] = sample.value
    return lags, depths


def test_readyz_follows_the_broker_and_the_lag_gauge_drains(
    own_broker: LocalBroker, start_worker: StartWorker, tmp_path: Path
) -> None:
    # Generate works on 8 requests at a time: the rest of the backlog waits in its pool, which
    # is what assetline_stage_queue_depth must show (with the default 512 every request of the
    # burst is taken in at once and waits for a provider slot instead, counted in progress).
    settings = line_settings_for(own_broker.bootstrap, tmp_path).model_copy(
        update={"generate_concurrency": 8}
    )
    port = settings.web_port
    requests = [e.request for e in mixed_requests(BURST)]
    asyncio.run(submit_requests(settings, requests))  # a backlog before the worker starts
    worker = start_worker(settings)

    # Ready only once it has joined and recovered: 503 (with a reason) first, then 200.
    took, before, _ = _wait_readyz(port, 200, worker, timeout=120)
    not_ready = [body for status, body in before if status == 503]
    print(f"\n/readyz 200 {took:.1f}s after start; before that: {before}")
    assert not_ready, f"/readyz answered 200 without a 503 first: {before}"
    assert all(body["ready"] is False and body["reason"] for body in not_ready)
    status, body, _ = _get(port, "/healthz")
    assert status == 200
    assert body["alive"] is True

    # The backlog shows as lag on .requests, per partition, and drains to 0.
    topic = TopicNames.with_prefix(settings.topic_prefix).requests
    samples: list[dict[int, float]] = []
    queued: list[dict[str, float]] = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        lags, depths = _scrape(port, topic)
        samples.append(lags)
        queued.append(depths)
        if len(lags) == 3 and sum(lags.values()) == 0 and len(samples) > 1:
            break
        time.sleep(0.3)
    peak = max(sum(lags.values()) for lags in samples)
    print(f"lag on {topic}: peak {peak:.0f} of {BURST}, first {samples[0]}, last {samples[-1]}")
    assert samples[-1] == {0: 0, 1: 0, 2: 0}, samples[-5:]
    assert all(0 <= value <= BURST for lags in samples for value in lags.values())
    assert peak > 0, "the backlog never showed as lag"
    stages = {"generate", "validate", "deliver", "review"}
    assert all(stages <= depths.keys() for depths in queued), queued[-1]
    assert all(value >= 0 for depths in queued for value in depths.values())
    deepest = {stage: max(depths[stage] for depths in queued) for stage in sorted(stages)}
    print(f"deepest stage queues seen: {deepest}; last {queued[-1]}")
    assert deepest["generate"] > 0, "the backlog never showed as generate's queue"
    completions = asyncio.run(
        await_completions(settings, [r.request_id for r in requests], timeout=60)
    )
    assert len(completions) == BURST

    # Broker stopped: 503 "broker unreachable" within the target; /healthz stays 200.
    stopping = time.monotonic()
    own_broker.down()
    stopped = time.monotonic()
    took, before, outage_slowest = _wait_readyz(port, 503, worker, timeout=60)
    to_503 = time.monotonic() - stopping
    status, body, _ = _get(port, "/readyz")
    print(
        f"/readyz 503 {to_503:.1f}s after the stop began ({took:.1f}s after the broker was "
        f"gone; stopping took {stopped - stopping:.1f}s); body {body}"
    )
    assert status == 503
    assert body["reason"] == "broker unreachable", body
    assert to_503 <= BROKER_LOSS_TARGET_S
    for _ in range(5):
        status, body, took_h = _get(port, "/healthz")
        assert status == 200
        outage_slowest = max(outage_slowest, took_h)
        status, body, took_r = _get(port, "/readyz")
        assert status == 503
        outage_slowest = max(outage_slowest, took_r)
        time.sleep(0.5)
    print(f"slowest /healthz or /readyz answer during the outage: {outage_slowest * 1000:.0f} ms")

    # Broker back: 200 again (after the group's rebalance, if the broker asks for one).
    starting = time.monotonic()
    own_broker.up(timeout=120)
    started = time.monotonic()
    took, before, _ = _wait_readyz(port, 200, worker, timeout=120)
    to_200 = time.monotonic() - starting
    print(
        f"/readyz 200 {to_200:.1f}s after the start began ({took:.1f}s after the broker "
        f"answered; starting took {started - starting:.1f}s); on the way: {before}"
    )
    assert worker.alive()


def test_a_member_left_without_partitions_is_ready_and_idle(
    line_settings: Settings, start_worker: StartWorker
) -> None:
    """One partition per topic, two workers: one gets every partition, the other none, and
    both answer 200 (an idle member is not a broken one)."""
    settings = line_settings.model_copy(update={"topic_partitions": 1})
    (port,) = free_ports(1)
    other = settings.model_copy(
        update={"web_port": port, "data_dir": settings.data_dir.with_name("worker-2")}
    )
    workers = [start_worker(settings), start_worker(other)]
    bodies: list[Any] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        answers = [_get(w.settings.web_port, "/readyz") for w in workers]
        bodies = [body for _, body, _ in answers]
        if [status for status, _, _ in answers] == [200, 200] and sorted(
            body["idle"] for body in bodies
        ) == [False, True]:
            break
        for worker in workers:
            assert worker.alive(), worker.log_tail()
        time.sleep(0.3)
    print(f"\n/readyz of the two workers: {bodies}")
    assert sorted(body["idle"] for body in bodies) == [False, True], bodies
    assert all(body["ready"] is True for body in bodies)
    assert sorted(body["partitions"] for body in bodies)[0] == 0
