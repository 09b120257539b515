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
from typing import Any

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


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """A failed test's report carries its workers' warnings and errors: CI keeps no files."""
    report = yield
    if report.failed and report.when in ("call", "setup"):
        for worker in item.stash.get(_WORKERS, []):
            report.sections.append(
                (f"{worker.log_path.name}: warnings and errors", _warnings_of(worker.log_path))
            )
    return report


_WORKERS = pytest.StashKey[list[WorkerProcess]]()
#: Worker log lines at or above WARNING shown per worker when a test fails.
_LOG_LINES_ON_FAILURE = 60


def _warnings_of(path: Path) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError as exc:
        return f"(unreadable: {exc})"
    kept = [ln for ln in lines if "[WARNING]" in ln or "[ERROR]" in ln or "[CRITICAL]" in ln]
    return "\n".join(kept[-_LOG_LINES_ON_FAILURE:]) or "(none)"


@pytest.fixture
def start_worker(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[Settings], WorkerProcess]]:
    """Start worker processes; every one is stopped (or killed) when the test ends."""
    started = request.node.stash.setdefault(_WORKERS, [])

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
