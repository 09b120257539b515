"""Fixtures for the HTTP adapter tests: a real provider server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.provider_server import ProviderServer, provider_server


@pytest.fixture
def server() -> Iterator[ProviderServer]:
    """A fresh scriptable provider server per test, so scripts and records never leak."""
    with provider_server() as started:
        yield started


@pytest.fixture
def internal() -> Iterator[ProviderServer]:
    """A second server on 127.0.0.2 playing an internal host (an admin page, metadata...).

    Tests allow-list only 127.0.0.1, so reaching this one means the SSRF guard let it through.
    """
    with provider_server("127.0.0.2") as started:
        yield started
