"""The event body: typed by status, small, stable across redeliveries."""

from __future__ import annotations

import json
import re

import pytest

from schemas.records import CompletionStatus
from schemas.webhook_event import MAX_REASONS, event_payload, webhook_id
from tests.support.webhook_receiver import make_completion


def test_webhook_id_is_stable_and_url_safe() -> None:
    first = webhook_id("req-1", 1)
    assert first == webhook_id("req-1", 1)
    assert re.fullmatch(r"msg_[A-Za-z0-9_-]{32}", first)
    assert first != webhook_id("req-1", 2)
    assert first != webhook_id("req-2", 1)
    # the separator keeps ("a1", 1) and ("a", 11) apart
    assert webhook_id("a1", 1) != webhook_id("a", 11)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (CompletionStatus.DELIVERED, "asset.completed"),
        (CompletionStatus.FALLBACK, "asset.completed"),
        (CompletionStatus.FAILED, "asset.failed"),
        (CompletionStatus.REJECTED, "asset.rejected"),
    ],
)
def test_event_type_follows_status(status: CompletionStatus, expected: str) -> None:
    event = json.loads(event_payload(make_completion(status=status)))
    assert event["type"] == expected
    assert event["data"]["status"] == status.value


def test_payload_links_the_asset_and_is_identical_on_redelivery() -> None:
    done = make_completion()
    body = event_payload(done)
    assert body == event_payload(done)
    event = json.loads(body)
    assert set(event) == {"type", "timestamp", "data"}
    assert event["timestamp"] == "2025-05-01T12:00:00.123000Z"
    assert event["data"] == {
        "request_id": "req-1",
        "idempotency_key": "idem-1",
        "tenant": "acme",
        "campaign_id": "spring",
        "status": "DELIVERED",
        "attempt": 1,
        "location": "file:///var/out/acme/spring/req-1.png",
        "sha256": "ab" * 32,
        "media_type": "image/png",
        "reasons": [],
    }
    assert len(body) < 1024


def test_only_the_first_reasons_are_sent_and_each_is_cut() -> None:
    reasons = [f"reason-{index}-" + "x" * 2000 for index in range(20)]
    done = make_completion(status=CompletionStatus.FAILED, reasons=reasons, location=None)
    data = json.loads(event_payload(done))["data"]
    assert len(data["reasons"]) == MAX_REASONS
    assert data["reasons"][0].startswith("reason-0-")
    assert all(len(reason) <= 500 for reason in data["reasons"])
    assert data["location"] is None
