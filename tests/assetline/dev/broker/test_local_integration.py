"""Starts a real Kafka broker from the shared jar cache (fetching it on first use)."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from assetline.dev.broker import BrokerError, LocalBroker, free_ports
from assetline.dev.broker._local import _pid_alive

pytestmark = pytest.mark.integration


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    port, ctrl = free_ports(2)
    # Default jar cache on purpose: shared with every other broker of this Kafka version.
    instance = LocalBroker(tmp_path / "kafka", port=port, controller_port=ctrl)
    try:
        yield instance
    finally:
        instance.down(timeout=10)


async def _create_and_list(bootstrap: str, topic: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])
        # A new topic reaches the metadata the broker answers with a moment after creation.
        deadline = time.monotonic() + 10
        topics: list[str] = await admin.list_topics()
        while topic not in topics and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            topics = await admin.list_topics()
        return topics
    finally:
        await admin.close()


async def _list(bootstrap: str) -> list[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    try:
        topics: list[str] = await admin.list_topics()
        return topics
    finally:
        await admin.close()


def _wait_gone(pid: int, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while _pid_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_broker_lifecycle(broker: LocalBroker) -> None:
    bootstrap = broker.up(timeout=90)
    assert bootstrap == broker.bootstrap
    status = broker.status()
    assert status.running
    assert status.answering
    assert status.pid is not None
    pid = status.pid
    assert os.getpgid(pid) == pid  # own process group, so down() can signal all of it
    assert broker.paths.log.stat().st_size > 0  # slf4j-simple is bound: the log is useful
    assert "Kafka Server started" in broker.paths.log.read_text()

    assert "assets.test" in asyncio.run(_create_and_list(bootstrap, "assets.test"))

    # Idempotent: a second up() from another manager of the same root returns at once.
    again = LocalBroker(broker.paths.root, port=broker.port, controller_port=broker.controller_port)
    started = time.monotonic()
    assert again.up() == bootstrap
    assert time.monotonic() - started < 10
    assert again.status().pid == pid

    cluster_id = broker.cluster_id()
    assert broker.down() is True
    assert _wait_gone(pid)
    assert not broker.paths.pid.exists()
    assert broker.status().running is False
    assert broker.down() is False

    # Restart on the same storage: same cluster, the topic survived.
    assert broker.up(timeout=90) == bootstrap
    assert broker.cluster_id() == cluster_id
    assert "assets.test" in asyncio.run(_list(bootstrap))
    new_pid = broker.status().pid
    assert new_pid is not None
    assert new_pid != pid
    assert broker.down() is True
    assert _wait_gone(new_pid)


async def _hold_connection(bootstrap: str, ready: asyncio.Event, release: asyncio.Event) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    await admin.start()
    await admin.list_topics()
    ready.set()
    await release.wait()
    await admin.close()


def test_down_then_up_at_once_with_clients_connected(broker: LocalBroker) -> None:
    """A broker stopped under connected clients leaves its ports' connections in TIME_WAIT;
    ``up`` right after used to refuse with "port already in use" for about a minute."""
    bootstrap = broker.up(timeout=90)

    async def restart() -> float:
        ready, release = asyncio.Event(), asyncio.Event()
        client = asyncio.create_task(_hold_connection(bootstrap, ready, release))
        await asyncio.wait_for(ready.wait(), 30)
        await asyncio.to_thread(broker.down)  # the broker closes the client's connection
        started = time.monotonic()
        await asyncio.to_thread(broker.up, 90)
        elapsed = time.monotonic() - started
        release.set()
        await client
        return elapsed

    elapsed = asyncio.run(restart())
    assert broker.status().answering
    assert elapsed < 60


def test_jvm_death_during_start_reports_log_tail(tmp_path: Path) -> None:
    port, ctrl = free_ports(2)
    LocalBroker(tmp_path / "kafka", port=port, controller_port=ctrl).format_storage()
    # Formatted storage, then a heap too small to boot: the JVM exits right away.
    broker = LocalBroker(tmp_path / "kafka", port=port, controller_port=ctrl, heap="1k")
    with pytest.raises(BrokerError, match=r"(?si)exited during start.*heap"):
        broker.up(timeout=60)
    assert broker.status().running is False
    assert not broker.paths.pid.exists()
