"""The console's review index applied to changelog records (no broker: records built here)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka import ConsumerRecord

import assetline.console.review_index as review_index
from assetline.console.review_index import ReviewIndex
from schemas.records import (
    AssetKind,
    BlobRef,
    GenerationRequest,
    RawAsset,
    ReviewAction,
    ReviewDecision,
    ReviewItem,
    ReviewStatus,
    ValidatedAsset,
    ValidationReport,
    Verdict,
)
from streams.codecs import Codecs
from streams.settings import Settings

CODECS = Codecs.load()


def _item(request_id: str, status: ReviewStatus = ReviewStatus.PENDING) -> ReviewItem:
    request = GenerationRequest(
        request_id=request_id,
        idempotency_key=request_id,
        tenant="acme",
        campaign_id="spring",
        kind=AssetKind.TEXT,
        prompt_template="p",
    )
    blob = BlobRef(uri="file:///b", sha256="0" * 64, size=1, media_type="text/plain")
    raw = RawAsset(
        request=request, blob=blob, provider="offline", model_version="1", latency_ms=1.0
    )
    decision = None
    if status is not ReviewStatus.PENDING:
        decision = ReviewDecision(
            decision_id="d", request_id=request_id, action=ReviewAction.APPROVE, reviewer="ana"
        )
    return ReviewItem(
        request_id=request_id,
        status=status,
        asset=ValidatedAsset(raw=raw, report=ValidationReport(verdict=Verdict.FAIL)),
        decision=decision,
    )


def _record(topic: str, key: str, value: bytes | None) -> ConsumerRecord[bytes, bytes]:
    fields: dict[str, Any] = {
        "topic": topic,
        "partition": 0,
        "offset": 0,
        "timestamp": 0,
        "timestamp_type": 0,
        "key": key.encode(),
        "value": value,
        "checksum": None,
        "serialized_key_size": len(key),
        "serialized_value_size": len(value or b""),
        "headers": (),
    }
    return ConsumerRecord(**fields)


def test_changes_are_pushed_and_decided_items_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(review_index, "MAX_DECIDED", 2)

    async def run() -> None:
        index = ReviewIndex(Settings(topic_prefix="t"), CODECS)
        topic = index.topics.review_items
        encode = CODECS.review_item.encode
        index._apply([_record(topic, f"r{i}", encode(_item(f"r{i}"))) for i in range(4)])
        index.ready.set()
        changes = index.subscribe()
        assert [i.request_id for i in index.pending()] == ["r0", "r1", "r2", "r3"]
        decided = [
            _record(topic, f"r{i}", encode(_item(f"r{i}", ReviewStatus.APPROVED))) for i in range(3)
        ]
        index._apply(decided)
        assert [i.request_id for i in index.pending()] == ["r3"]
        assert sorted(index.items) == ["r1", "r2", "r3"]  # r0, the oldest decided, forgotten
        seen = [changes.get_nowait() for _ in range(3)]
        assert [(c.kind, c.request_id, c.reviewer) for c in seen] == [
            ("decided", "r0", "ana"),
            ("decided", "r1", "ana"),
            ("decided", "r2", "ana"),
        ]
        index._apply([_record(topic, "r4", encode(_item("r4"))), _record(topic, "r3", None)])
        assert [(c.kind, c.request_id) for c in (changes.get_nowait(), changes.get_nowait())] == [
            ("added", "r4"),
            ("decided", "r3"),
        ]
        assert [i.request_id for i in index.pending()] == ["r4"]

    asyncio.run(run())
