"""Deferred deliveries: their headers, how long each deferral waits, when a record is due."""

from __future__ import annotations

import pytest

from agents.deliver.deferral import (
    COUNT_HEADER,
    DUE_HEADER,
    FROM_HEADER,
    Deferral,
    defer_delay_s,
    deferral_of,
    deferred_headers,
    due_at_s,
)


def test_the_wait_doubles_with_each_deferral_up_to_the_cap() -> None:
    delays = [defer_delay_s(n, 5.0, 300.0) for n in range(1, 10)]
    assert delays == [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0, 300.0]
    assert defer_delay_s(0, 5.0, 300.0) == 5.0
    assert defer_delay_s(10_000, 5.0, 300.0) == 300.0  # no overflow on a long-dead destination
    assert defer_delay_s(1, 5.0, 2.0) == 2.0


def test_headers_keep_the_originals_and_replace_an_earlier_deferral() -> None:
    original = [("traceparent", b"00-abc-def-01"), ("content-type", b"avro")]
    first = deferred_headers(
        original, source="p.approved", destination="dam", due_ms=1_000, count=1
    )
    assert first[:2] == original
    assert deferral_of(first) == Deferral("p.approved", 1_000, 1, "dam")
    second = deferred_headers(first, source="p.approved", destination="dam", due_ms=9_000, count=2)
    assert [name for name, _ in second].count(DUE_HEADER) == 1
    assert deferral_of(second) == Deferral("p.approved", 9_000, 2, "dam")
    assert second[:2] == original


def test_a_record_never_deferred_or_with_damaged_headers_reads_as_due_now() -> None:
    assert deferral_of(None) == Deferral()
    assert deferral_of([("other", b"x")]).count == 0
    damaged = deferral_of([(DUE_HEADER, b"soon"), (COUNT_HEADER, b"-3"), (FROM_HEADER, b"")])
    assert damaged == Deferral()
    assert due_at_s(damaged, 100.0, 300.0) == 100.0


@pytest.mark.parametrize(
    ("due_ms", "expected"),
    [(150_000, 150.0), (90_000, 90.0), (10**15, 400.0)],
)
def test_a_record_is_due_at_its_header_but_never_past_the_longest_wait(
    due_ms: int, expected: float
) -> None:
    assert due_at_s(Deferral(due_ms=due_ms), 100.0, 300.0) == expected
