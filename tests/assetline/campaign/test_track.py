"""assetline.campaign.track: following ``.completed`` to a deadline, and the review table.

The reader is a fake here; the run against a real line is ``tests/integration/test_campaign.py``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

import assetline.campaign.track as track
import assetline.review as review
from assetline.campaign import CampaignSummary
from schemas.records import AssetCompleted, AssetKind, CompletionStatus, ReviewStatus
from streams.codecs import Codecs
from streams.settings import Settings

TP = ("completed", 0)


def _done(request_id: str, attempt: int = 1) -> AssetCompleted:
    return AssetCompleted(
        request_id=request_id,
        idempotency_key=request_id,
        tenant="acme",
        campaign_id="c",
        kind=AssetKind.TEXT,
        attempt=attempt,
        status=CompletionStatus.DELIVERED,
    )


@dataclass
class FakeReader:
    """One partition holding ``history``, then ``later`` messages once the history is read."""

    history: list[Any]
    later: list[Any] = field(default_factory=list)
    position_now: int = 0
    polls: int = 0
    stopped: bool = False

    def assignment(self) -> set[tuple[str, int]]:
        return {TP}

    async def end_offsets(self, tps: list[Any]) -> dict[Any, int]:
        return {TP: len(self.history)}

    async def position(self, tp: Any) -> int:
        return self.position_now

    async def getmany(self, *tps: Any, timeout_ms: int) -> dict[Any, list[Any]]:
        self.polls += 1
        batch, self.history = self.history, []
        if not batch:
            batch, self.later = self.later, []
        self.position_now += len(batch)
        return {TP: batch} if batch else {}

    async def stop(self) -> None:
        self.stopped = True


@pytest.fixture(scope="module")
def codecs() -> Codecs:
    return Codecs.load()


@pytest.fixture
def settings() -> Settings:
    return Settings(kafka_bootstrap="localhost:1", topic_prefix="t13")


def _message(codecs: Codecs, done: AssetCompleted | None, key: str, value: bytes = b"") -> Any:
    data = codecs.completed.encode(done) if done is not None else value
    return SimpleNamespace(key=key.encode(), value=data)


def _reader(monkeypatch: pytest.MonkeyPatch, reader: FakeReader) -> None:
    async def open_completion_reader(settings: Settings) -> FakeReader:
        return reader

    monkeypatch.setattr(track, "open_completion_reader", open_completion_reader)


def test_a_passed_deadline_still_reads_the_whole_history(
    settings: Settings, codecs: Codecs, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = FakeReader(
        history=[
            _message(codecs, _done("a"), "a"),
            _message(codecs, None, "not-ours", b"never decoded"),
            _message(codecs, None, "b", b"garbage"),
        ],
        later=[_message(codecs, _done("b"), "b")],
    )
    _reader(monkeypatch, reader)
    summary = CampaignSummary(["a", "b"])
    ticks: list[int] = []
    asyncio.run(
        track.follow_completions(
            settings, summary, codecs, time.monotonic() - 1, lambda: ticks.append(1)
        )
    )
    assert set(summary.latest) == {"a"}  # "b" came after the history: past the deadline
    assert reader.stopped
    assert ticks == [1]


def test_following_stops_when_every_id_completed(
    settings: Settings, codecs: Codecs, monkeypatch: pytest.MonkeyPatch
) -> None:
    reader = FakeReader(
        history=[_message(codecs, _done("a"), "a")],
        later=[_message(codecs, _done("b", attempt=2), "b")],
    )
    _reader(monkeypatch, reader)
    summary = CampaignSummary(["a", "b"])
    asyncio.run(track.follow_completions(settings, summary, codecs, time.monotonic() + 60))
    assert summary.complete
    assert summary.latest["b"].attempt == 2
    assert reader.polls == 2


def test_without_completion_lists_only_what_still_needs_a_generation(
    settings: Settings, codecs: Codecs, monkeypatch: pytest.MonkeyPatch
) -> None:
    _reader(monkeypatch, FakeReader(history=[_message(codecs, _done("a"), "a")]))
    plan = SimpleNamespace(requests=[SimpleNamespace(request_id=rid) for rid in ("a", "b")])
    summary = CampaignSummary(["a", "b"])
    left = asyncio.run(track.without_completion(settings, plan, summary, codecs))
    assert [r.request_id for r in left] == ["b"]
    assert summary.done == 1


def test_pending_review_items_are_marked_waiting_not_missing(
    settings: Settings, codecs: Codecs, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = {
        "b": SimpleNamespace(status=ReviewStatus.PENDING),
        "c": SimpleNamespace(status=ReviewStatus.REJECTED),
        "x": SimpleNamespace(status=ReviewStatus.PENDING),  # another campaign's
    }

    async def load_items(settings: Settings, codecs: Codecs) -> dict[str, Any]:
        return items

    monkeypatch.setattr(review, "load_items", load_items)  # what waiting_for_review reads
    summary = CampaignSummary(["a", "b", "c"])
    summary.add(_done("a"))
    asyncio.run(track.mark_waiting_in_review(settings, summary, codecs))
    assert summary.in_review == {"b"}
    assert summary.missing() == ["c"]


def test_review_marks_are_refreshed_while_the_campaign_is_followed(
    settings: Settings, codecs: Codecs, monkeypatch: pytest.MonkeyPatch
) -> None:
    items: dict[str, Any] = {}
    reads: list[int] = []

    async def load_items(settings: Settings, codecs: Codecs) -> dict[str, Any]:
        reads.append(1)
        return dict(items)

    monkeypatch.setattr(review, "load_items", load_items)  # what waiting_for_review reads
    summary = CampaignSummary(["a", "b"])

    async def follow() -> None:
        marking = asyncio.create_task(
            track.keep_marking_in_review(settings, summary, codecs, every=0.01)
        )
        await asyncio.sleep(0.05)
        assert summary.in_review == set()
        items["b"] = SimpleNamespace(status=ReviewStatus.PENDING)  # validate held it
        await asyncio.sleep(0.05)
        assert summary.in_review == {"b"}
        marking.cancel()

    asyncio.run(follow())
    assert len(reads) >= 2
