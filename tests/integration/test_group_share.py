"""Rate limits and breakers shared across the group: every worker learns the live membership
at each rebalance (``assetline_group_members``) and takes that share of each provider's limit,
and a breaker one worker opens (its BREAKER_OPENED alert on ``.alerts``) opens on every worker,
and closes on every worker again when that worker's probe closes it (``details.state=closed``)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from aiokafka import AIOKafkaProducer

from assetline.dev.broker import free_ports
from assetline.dev.child_worker import WorkerProcess
from schemas.records import Alert, AlertKind
from streams.kafka_security import client_kwargs
from streams.registry import codecs_for_settings
from streams.settings import Settings
from streams.topics import TopicNames
from tests.integration.helpers import worker_metric

pytestmark = pytest.mark.integration


def _wait_ready(worker: WorkerProcess, timeout: float) -> None:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        assert worker.alive(), worker.log_tail()
        try:
            if httpx.get(f"http://127.0.0.1:{worker.settings.web_port}/readyz").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"never ready\n{worker.log_tail()}")


def _members(port: int) -> float | None:
    return worker_metric(port, "assetline_group_members")


def _wait_members(worker: WorkerProcess, want: float, timeout: float) -> float:
    port = worker.settings.web_port
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        assert worker.alive(), worker.log_tail()
        if _members(port) == want:
            return time.monotonic() - start
        time.sleep(0.3)
    raise AssertionError(f"members never {want} on :{port} ({_members(port)})\n{worker.log_tail()}")


def test_each_worker_knows_the_live_group_size(
    line_settings: Settings, start_worker: Callable[[Settings], WorkerProcess]
) -> None:
    first = start_worker(line_settings)
    _wait_members(first, 1, timeout=90)
    (port,) = free_ports(1)
    other = line_settings.model_copy(
        update={"web_port": port, "data_dir": line_settings.data_dir.with_name("worker-2")}
    )
    second = start_worker(other)
    took = max(_wait_members(first, 2, timeout=90), _wait_members(second, 2, timeout=90))
    print(f"\nboth workers counted 2 members {took:.1f}s after the second started")

    for worker in (first, second):  # both past recovery: their breaker followers run
        _wait_ready(worker, timeout=90)

    # A peer's breaker opening (as the router publishes it) opens both workers' breakers.
    asyncio.run(_publish_breaker_opened(line_settings, "offline"))
    start = time.monotonic()
    while time.monotonic() - start < 30:
        states = [
            worker_metric(
                w.settings.web_port, "assetline_provider_breaker_state", provider="offline"
            )
            for w in (first, second)
        ]
        if states == [2, 2]:
            break
        time.sleep(0.2)
    print(f"both breakers open {time.monotonic() - start:.1f}s after the alert: {states}")
    assert states == [2, 2], first.log_tail()

    # The peer's probe succeeded: its closing closes both breakers (they opened only for it).
    asyncio.run(_publish_breaker_opened(line_settings, "offline", state="closed"))
    start = time.monotonic()
    while time.monotonic() - start < 30:
        states = [
            worker_metric(
                w.settings.web_port, "assetline_provider_breaker_state", provider="offline"
            )
            for w in (first, second)
        ]
        if states == [0, 0]:
            break
        time.sleep(0.2)
    print(f"both breakers closed {time.monotonic() - start:.1f}s after the closing: {states}")
    assert states == [0, 0], first.log_tail()
    assert second.stop() == 0
    took = _wait_members(first, 1, timeout=90)
    print(f"the first counted 1 member again {took:.1f}s after the second stopped")


async def _publish_breaker_opened(settings: Settings, provider: str, state: str = "open") -> None:
    alert = Alert(
        alert_id=str(uuid.uuid4()),
        kind=AlertKind.BREAKER_OPENED,
        message=f"circuit breaker of provider {provider!r} {state}",
        provider=provider,
        details={"state": state},
    )
    producer = AIOKafkaProducer(**client_kwargs(settings))
    await producer.start()
    try:
        topic = TopicNames.with_prefix(settings.topic_prefix).alerts
        value = codecs_for_settings(settings).alert.encode(alert)
        await producer.send_and_wait(topic, value, key=alert.alert_id.encode())
    finally:
        await producer.stop()
