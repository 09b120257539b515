"""Fixtures shared by the suite: a real Kafka broker for integration tests, isolated lines.

Broker choice, in order: ``KAFKA_BOOTSTRAP`` (any existing cluster), testcontainers' Kafka when a
Docker engine answers, else the project's own local KRaft broker (Kafka jars from Maven
Central, started once per session on free ports in a temporary folder).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from assetline.dev.child_worker import WorkerProcess
from streams.settings import Settings
from tests.support.brokers import line_settings_for, own_broker
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
    with own_broker(tmp_path_factory.mktemp("kafka")) as broker:
        yield broker.bootstrap


@pytest.fixture
def line_settings(kafka_bootstrap: str, tmp_path: Path) -> Settings:
    """Settings for one isolated line: uuid-named topics and group, temporary folders."""
    return line_settings_for(kafka_bootstrap, tmp_path)


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
