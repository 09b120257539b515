"""StageIO: what every agent does around its pure function (decode, dead-letter, guard)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from streams.codecs import Codecs
from streams.deadletter import header_map
from streams.metrics import StageMetrics
from streams.stage import StageIO


class RecordingTopic:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, **kwargs: Any) -> None:
        self.sent.append(kwargs)


def make_io() -> tuple[StageIO, RecordingTopic, CollectorRegistry]:
    registry = CollectorRegistry()
    deadletter = RecordingTopic()
    line = SimpleNamespace(
        metrics=StageMetrics.build(registry),
        topics=SimpleNamespace(deadletter=deadletter),
    )
    return StageIO(line, "generate"), deadletter, registry  # type: ignore[arg-type]


def event(value: bytes | None, headers: Any = None) -> SimpleNamespace:
    message = SimpleNamespace(
        topic="t.requests", partition=2, offset=41, key=b"k", value=value, headers=headers
    )
    return SimpleNamespace(message=message)


def test_undecodable_value_is_dead_lettered_with_its_origin() -> None:
    io, deadletter, registry = make_io()
    result = asyncio.run(io.decode(Codecs.load().request, event(b"junk", [("trace", b"abc")])))
    assert result is None
    (sent,) = deadletter.sent
    assert sent["key"] == b"k"
    assert sent["value"] == b"junk"
    headers = header_map(sent["headers"])
    assert headers["trace"] == "abc"
    assert headers["assetline.dlq.error.code"] == "codec.malformed"
    assert headers["assetline.dlq.source.topic"] == "t.requests"
    assert headers["assetline.dlq.source.partition"] == "2"
    assert headers["assetline.dlq.source.offset"] == "41"
    errors = registry.get_sample_value(
        "assetline_stage_errors_total", {"stage": "generate", "code": "codec.malformed"}
    )
    assert errors == 1.0


def test_null_value_is_dead_lettered_not_crashing() -> None:
    io, deadletter, _ = make_io()
    assert asyncio.run(io.decode(Codecs.load().request, event(None))) is None
    assert len(deadletter.sent) == 1


def test_unexpected_exception_is_dead_lettered_and_swallowed() -> None:
    io, deadletter, registry = make_io()

    async def go() -> None:
        async with io.handling(event(b"v", {"h": b"1"})):
            raise KeyError("boom")

    asyncio.run(go())
    (sent,) = deadletter.sent
    headers = header_map(sent["headers"])
    assert headers["assetline.dlq.error.code"] == "generate.crashed"
    assert "KeyError" in headers["assetline.dlq.error.reason"]
    assert headers["h"] == "1"
    assert registry.get_sample_value("assetline_stage_events_in_total", {"stage": "generate"}) == 1
    assert registry.get_sample_value("assetline_stage_seconds_count", {"stage": "generate"}) == 1


def test_cancellation_is_not_swallowed() -> None:
    io, deadletter, _ = make_io()

    async def go() -> None:
        async with io.handling(event(b"v")):
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        asyncio.run(go())
    assert deadletter.sent == []
