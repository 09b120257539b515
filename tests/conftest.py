"""Fixtures shared by the suite: a real Kafka broker for integration tests, isolated lines.

Broker choice, in order: ``KAFKA_BOOTSTRAP`` (any existing cluster), testcontainers' Kafka when a
Docker engine answers, else the project's own local KRaft broker (Kafka jars from Maven
Central, started once per session on free ports in a temporary folder).
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from assetline.dev.broker import LocalBroker, free_ports
from assetline.dev.child_worker import WorkerProcess
from streams.settings import Settings
from tests.support.webhook_receiver import Receiver

TESTCONTAINERS_KAFKA_IMAGE = "confluentinc/cp-kafka:8.0.0"  # Apache Kafka 4.0, KRaft


def _docker_answers() -> bool:
    try:
        import docker

        docker.from_env(timeout=3).ping()
    except Exception:
        return False
    return True


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """host:port of a real Kafka broker for the whole session."""
    existing = os.environ.get("KAFKA_BOOTSTRAP")
    if existing:
        yield existing
        return
    if _docker_answers():
        from testcontainers.community.kafka import KafkaContainer

        with KafkaContainer(TESTCONTAINERS_KAFKA_IMAGE).with_kraft() as container:
            yield container.get_bootstrap_server()
        return
    port, controller_port = free_ports(2)
    broker = LocalBroker(
        tmp_path_factory.mktemp("kafka"), port=port, controller_port=controller_port
    )
    bootstrap = broker.up(timeout=120)
    try:
        yield bootstrap
    finally:
        broker.down()


@pytest.fixture
def line_settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    """Settings for one isolated line: uuid-named topics and group, temporary folders."""
    uid = uuid.uuid4().hex[:12]
    (web_port,) = free_ports(1)
    return Settings(
        kafka_bootstrap=kafka_bootstrap,
        app_id=f"test-{uid}",
        topic_prefix=f"test-{uid}",
        topic_partitions=3,
        blob_dir=tmp_path / "blobs",
        delivery_dir=tmp_path / "delivery",
        data_dir=tmp_path / "worker",
        web_port=web_port,
        session_timeout_s=6.0,
        heartbeat_interval_s=0.5,
        commit_interval_s=0.5,
        log_level="info",
    )


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[[Settings], WorkerProcess]]:
    """Start worker processes; every one is stopped (or killed) when the test ends."""
    started: list[WorkerProcess] = []

    def start(settings: Settings) -> WorkerProcess:
        worker = WorkerProcess(settings, tmp_path / f"worker-{len(started)}.log").start()
        started.append(worker)
        return worker

    yield start
    for worker in started:
        with contextlib.suppress(Exception):
            worker.stop(timeout=15)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1 that answers as each test scripts it."""
    server = Receiver().start()
    try:
        yield server
    finally:
        server.stop()
