"""assetline.webhooks: reading the disabled-endpoints topic and re-enabling an endpoint.

The broker calls are replaced by fakes here; the round trip through Kafka and the CLI is in
``tests/integration/test_webhooks.py``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

import assetline.webhooks as webhooks
from agents.notify.disabled import disabled_entry, encode_entry, url_sha256
from streams.settings import Settings

URL = "https://hooks.example.com/in/SECRET-TOKEN"
OTHER = "https://other.example.com/hook"


def _records(*pairs: tuple[bytes | None, bytes | None]) -> list[SimpleNamespace]:
    return [SimpleNamespace(key=key, value=value) for key, value in pairs]


@pytest.fixture
def settings() -> Settings:
    return Settings(kafka_bootstrap="localhost:1", topic_prefix="t13")


def _topic(monkeypatch: pytest.MonkeyPatch, exists: bool, records: list[SimpleNamespace]) -> None:
    async def topic_exists(bootstrap: str, topic: str) -> bool:
        assert topic == "t13.webhooks.disabled"
        return exists

    async def read_to_end(bootstrap: str, topic: str) -> list[SimpleNamespace]:
        return records

    monkeypatch.setattr(webhooks, "topic_exists", topic_exists)
    monkeypatch.setattr(webhooks, "read_to_end", read_to_end)


def test_a_missing_topic_is_one_error_naming_it(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _topic(monkeypatch, exists=False, records=[])
    with pytest.raises(webhooks.DisabledTopicMissingError) as caught:
        asyncio.run(webhooks.load_disabled(settings))
    assert str(caught.value) == (
        "topic t13.webhooks.disabled does not exist: no worker of this line has run yet "
        "(create the topics with 'assetline topics')"
    )


def test_records_are_applied_in_order_and_malformed_ones_skipped(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    at = datetime(2026, 1, 2, tzinfo=UTC)
    first = encode_entry(disabled_entry(URL, "wh-1", at=at))
    other = encode_entry(disabled_entry(OTHER, "wh-2", at=at))
    tombstone = (url_sha256(OTHER).encode("ascii"), None)
    _topic(monkeypatch, True, _records(first, (b"not-a-digest", b"{}"), other, tombstone))

    registry = asyncio.run(webhooks.load_disabled(settings))
    assert [entry.url_sha256 for entry in registry.entries()] == [url_sha256(URL)]
    assert URL in registry
    assert OTHER not in registry


def test_enabling_an_endpoint_that_is_not_disabled_writes_nothing(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _topic(monkeypatch, True, [])

    def no_producer(**kwargs: object) -> None:
        raise AssertionError("nothing to enable: no producer may be opened")

    monkeypatch.setattr(webhooks, "AIOKafkaProducer", no_producer)
    assert asyncio.run(webhooks.enable_endpoint(settings, URL)) is None


def test_enabling_a_disabled_endpoint_writes_its_tombstone(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _topic(monkeypatch, True, _records(encode_entry(disabled_entry(URL, "wh-1"))))
    sent: list[tuple[str, bytes, bytes | None]] = []

    class Producer:
        def __init__(self, **kwargs: object) -> None:
            assert kwargs["acks"] == "all"

        async def start(self) -> None: ...

        async def stop(self) -> None: ...

        async def send_and_wait(self, topic: str, key: bytes, value: bytes | None) -> None:
            sent.append((topic, key, value))

    monkeypatch.setattr(webhooks, "AIOKafkaProducer", Producer)
    entry = asyncio.run(webhooks.enable_endpoint(settings, url_sha256(URL)))
    assert entry is not None
    assert entry.webhook_id == "wh-1"
    assert sent == [("t13.webhooks.disabled", url_sha256(URL).encode("ascii"), None)]
