"""The completion ledger: one completion per (request, attempt), later attempts go through."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agents.deliver.ledger import already_completed
from schemas.records import AssetCompleted, AssetKind, CompletionStatus
from streams.codecs import Codecs

CODEC = Codecs.load().completed


def previous(attempt: int, status: CompletionStatus = CompletionStatus.DELIVERED) -> bytes:
    return CODEC.encode(
        AssetCompleted(
            request_id="req-1",
            idempotency_key="idem-1",
            tenant="acme",
            campaign_id="spring",
            kind=AssetKind.TEXT,
            attempt=attempt,
            status=status,
            completed_at=datetime(2024, 5, 17, tzinfo=UTC),
        )
    )


def test_nothing_recorded_is_not_completed() -> None:
    def must_not_decode(data: bytes) -> AssetCompleted:
        raise AssertionError("nothing to decode")

    assert already_completed(None, 1, must_not_decode) is False


def test_same_attempt_is_completed() -> None:
    assert already_completed(previous(1), 1, CODEC.decode) is True
    assert already_completed(previous(4), 4, CODEC.decode) is True


def test_later_attempt_recorded_means_this_one_is_a_stale_redelivery() -> None:
    assert already_completed(previous(3), 2, CODEC.decode) is True


@pytest.mark.parametrize(("recorded", "incoming"), [(1, 2), (2, 3), (1, 10)])
def test_lower_previous_attempt_is_not_completed(recorded: int, incoming: int) -> None:
    assert already_completed(previous(recorded), incoming, CODEC.decode) is False


@pytest.mark.parametrize("status", list(CompletionStatus))
def test_any_status_counts_as_completed(status: CompletionStatus) -> None:
    assert already_completed(previous(2, status), 2, CODEC.decode) is True


def test_decode_is_the_one_given() -> None:
    seen: list[bytes] = []

    def decode(data: bytes) -> AssetCompleted:
        seen.append(data)
        return CODEC.decode(data)

    data = previous(5)
    assert already_completed(data, 6, decode) is False
    assert seen == [data]
