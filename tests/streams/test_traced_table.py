"""TracedTable: changelog records carry the writer's trace; each key's trace survives recovery."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from streams.app import create_faust_app
from streams.settings import Settings
from streams.trace_context import TRACEPARENT, extract, parse_traceparent
from streams.traced_table import TracedTable
from streams.tracing import LOCAL, span

PRODUCER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class Changelog:
    """The part of a Faust topic a table's changelog write uses, recording what is sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    def send_soon(self, **kwargs: Any) -> None:
        self.sent.append(kwargs)


def _event(key: bytes, value: bytes | None, headers: Any) -> SimpleNamespace:
    message = SimpleNamespace(key=key, value=value, headers=headers, partition=0, offset=0)
    return SimpleNamespace(key=key, value=value, message=message)


@pytest.fixture
def table(tmp_path: Path) -> TracedTable:
    app = create_faust_app(Settings(data_dir=tmp_path))
    return TracedTable(
        app,
        name="review",
        beacon=app.tables.beacon,
        changelog_topic=Changelog(),
        key_type=bytes,
        value_type=bytes,
        partitions=1,
    )


def test_a_write_in_a_span_carries_its_trace_and_is_remembered(table: TracedTable) -> None:
    with span(LOCAL, "review", parse_traceparent(PRODUCER)) as stage:
        table.send_changelog(0, b"r-1", b"item")
    (sent,) = table.changelog_topic.sent
    assert sent["key"] == b"r-1"
    assert extract(sent["headers"]) == stage.context
    assert table.trace_of(b"r-1") == stage.context
    assert table.trace_of(b"r-2") is None


def test_recovery_remembers_each_keys_last_trace_and_forgets_deleted_keys(
    table: TracedTable,
) -> None:
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    table.apply_changelog_batch(
        [
            _event(b"a", b"1", [(TRACEPARENT, PRODUCER.encode())]),
            _event(b"b", b"1", {TRACEPARENT: PRODUCER.encode()}),  # headers as a mapping
            _event(b"b", b"2", [(TRACEPARENT, other.encode())]),  # the last write wins
            _event(b"c", b"1", [(TRACEPARENT, b"junk")]),
            _event(b"d", b"1", [(TRACEPARENT, PRODUCER.encode())]),
            _event(b"d", None, None),  # deleted
        ]
    )
    assert table.trace_of(b"a") == parse_traceparent(PRODUCER)
    assert table.trace_of(b"b") == parse_traceparent(other)
    assert table.trace_of(b"c") is None
    assert table.trace_of(b"d") is None
    assert table.data[b"a"] == b"1"  # the records were applied too
    assert table.data[b"b"] == b"2"


def test_a_table_that_only_carries_traces_keeps_none_per_key(tmp_path: Path) -> None:
    class Carrying(TracedTable):
        remember_traces = False

    app = create_faust_app(Settings(data_dir=tmp_path))
    table = Carrying(
        app,
        name="generations",
        beacon=app.tables.beacon,
        changelog_topic=Changelog(),
        key_type=bytes,
        value_type=bytes,
        partitions=1,
    )
    with span(LOCAL, "generate", parse_traceparent(PRODUCER)) as stage:
        table.send_changelog(0, b"r-1|1", b"record")
    table.apply_changelog_batch([_event(b"r-2|1", b"1", [(TRACEPARENT, PRODUCER.encode())])])
    (sent,) = table.changelog_topic.sent
    assert extract(sent["headers"]) == stage.context
    assert table.trace_of(b"r-1|1") is None
    assert table.trace_of(b"r-2|1") is None
    assert table.data[b"r-2|1"] == b"1"
