"""Fixtures for the webhook tests: a started :class:`Receiver`, stopped afterwards."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.agents.deliver.webhooks._receiver import Receiver


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver().start()
    try:
        yield server
    finally:
        server.stop()
