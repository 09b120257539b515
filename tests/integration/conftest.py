"""Fixtures of the integration tests that start more than the broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from streams.settings import Settings
from tests.support.console import ConsoleProcess


@pytest.fixture
def start_console(tmp_path: Path) -> Iterator[Callable[[Settings], ConsoleProcess]]:
    """Start console processes; every one is stopped when the test ends."""
    started: list[ConsoleProcess] = []

    def start(settings: Settings) -> ConsoleProcess:
        console = ConsoleProcess(settings, tmp_path / f"console-{len(started)}.log")
        started.append(console)
        return console.start()

    yield start
    for console in started:
        console.stop()
