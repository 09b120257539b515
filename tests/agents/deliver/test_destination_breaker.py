"""A destination's circuit breaker: what a delivery says about its destination, and what the
breaker does with it (agents/deliver/deliver_one.verdict_of, agents/deliver/agent.py)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path, PurePosixPath

import pytest
from prometheus_client import CollectorRegistry

from agents.deliver.agent import _BreakersOpen, breaker_changed, report_verdict
from agents.deliver.deliver_one import Verdict, deliver_approved, verdict_of
from agents.deliver.metadata import MetadataError
from agents.deliver.sinks import SinkError
from agents.deliver.sinks.retry import RetryingSink
from schemas.records import CompletionStatus
from streams.blobs import BlobError, LocalBlobStore
from streams.circuit_breaker import BreakerState, CircuitBreaker
from tests.agents.deliver.test_deliver_one import approved


class _Answering:
    """A sink that raises ``error`` on every write (None: stores it)."""

    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error
        self.calls = 0

    async def write(self, path: PurePosixPath, data: bytes, media_type: str) -> str:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return f"mem://{path}"

    async def create(self, path: PurePosixPath, data: bytes, media_type: str) -> str:
        return await self.write(path, data, media_type)


def _503() -> SinkError:
    return SinkError("sink.http.unavailable", "PUT http://dam/x: HTTP 503")


def _verdicts(
    tmp_path: Path, sink: object, blobs: LocalBlobStore | None = None
) -> tuple[list[Verdict], CompletionStatus]:
    store = LocalBlobStore(tmp_path / "blobs")
    ref = store.put(b"hello", "text/plain; charset=utf-8")
    seen: list[Verdict] = []
    done = asyncio.run(
        deliver_approved(approved(ref), blobs or store, sink, on_verdict=seen.append)  # type: ignore[arg-type]
    )
    return seen, done.status


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (None, Verdict.ANSWERED),
        (SinkError("sink.http.unavailable", "HTTP 503"), Verdict.FAILED),
        (SinkError("sink.http.timeout", "timed out"), Verdict.FAILED),
        (SinkError("sink.http.rate_limited", "HTTP 429", retry_after_s=1.0), Verdict.FAILED),
        (SinkError("sink.http.rejected", "HTTP 400", retryable=False), Verdict.ANSWERED),
        (SinkError("sink.http.denied", "HTTP 403", retryable=False), Verdict.ANSWERED),
        (MetadataError("cannot label"), Verdict.NONE),
        (BlobError("blob.missing", "gone"), Verdict.NONE),
        (asyncio.CancelledError(), Verdict.NONE),
        (RuntimeError("bug"), Verdict.NONE),
    ],
)
def test_verdict_of_blames_the_destination_only_for_its_own_failures(
    error: BaseException | None, verdict: Verdict
) -> None:
    assert verdict_of(error) is verdict


def test_a_destination_down_after_the_retries_is_a_failure_verdict(tmp_path: Path) -> None:
    dead = _Answering(_503())
    sink = RetryingSink(dead, 2, 0.0, max_delay_s=0.0)
    assert _verdicts(tmp_path, sink) == ([Verdict.FAILED], CompletionStatus.FAILED)
    assert dead.calls == 2  # the retries ran first: only their last error counts


def test_a_stored_asset_is_an_answer(tmp_path: Path) -> None:
    assert _verdicts(tmp_path, _Answering()) == ([Verdict.ANSWERED], CompletionStatus.DELIVERED)


def test_an_asset_the_destination_refuses_is_an_answer(tmp_path: Path) -> None:
    refused = _Answering(SinkError("sink.http.rejected", "HTTP 422", retryable=False))
    assert _verdicts(tmp_path, RetryingSink(refused, 3, 0.0)) == (
        [Verdict.ANSWERED],
        CompletionStatus.FAILED,
    )
    assert refused.calls == 1


def test_a_missing_blob_says_nothing_of_the_destination(tmp_path: Path) -> None:
    sink = _Answering()
    elsewhere = LocalBlobStore(tmp_path / "elsewhere")
    assert _verdicts(tmp_path, sink, blobs=elsewhere) == ([Verdict.NONE], CompletionStatus.FAILED)
    assert sink.calls == 0


def test_a_cancelled_delivery_reports_no_verdict(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    ref = store.put(b"hello", "text/plain")
    seen: list[Verdict] = []
    sink = _Answering(asyncio.CancelledError())
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(deliver_approved(approved(ref), store, sink, on_verdict=seen.append))
    assert seen == []


def test_the_verdict_leaves_the_completion_as_it_was(tmp_path: Path) -> None:
    store = LocalBlobStore(tmp_path / "blobs")
    ref = store.put(b"hello", "text/plain")
    sink = _Answering(_503())
    without = asyncio.run(deliver_approved(approved(ref), store, sink))
    with_ = asyncio.run(deliver_approved(approved(ref), store, sink, on_verdict=lambda _: None))
    assert without.model_dump(exclude={"completed_at", "timings_ms"}) == with_.model_dump(
        exclude={"completed_at", "timings_ms"}
    )


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_failures_open_the_breaker_answers_reset_it_and_no_verdict_frees_the_probe() -> None:
    clock = _Clock()
    breaker = CircuitBreaker("dam", failure_threshold=2, reset_after_s=10.0, clock=clock)
    for verdicts in ([Verdict.FAILED], [Verdict.ANSWERED], [Verdict.FAILED]):
        assert breaker.allow()
        report_verdict(breaker, verdicts)
    assert breaker.state is BreakerState.CLOSED  # the answer in between broke the streak
    assert breaker.allow()
    report_verdict(breaker, [Verdict.FAILED])
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()
    assert breaker.retry_in_s() == 10.0
    clock.now = 10.0
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one
    report_verdict(breaker, [])  # cancelled: no verdict, the slot is free again
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()
    report_verdict(breaker, [Verdict.NONE])  # the asset's blob was gone: still no verdict
    assert breaker.allow()
    report_verdict(breaker, [Verdict.ANSWERED])
    assert breaker.state is BreakerState.CLOSED


def test_the_gauge_and_the_logs_follow_the_breaker(caplog: pytest.LogCaptureFixture) -> None:
    clock = _Clock()
    breakers = {
        name: CircuitBreaker(name, 1, 5.0, clock=clock, on_change=breaker_changed)
        for name in ("dam", "local")
    }
    registry = CollectorRegistry()
    registry.register(_BreakersOpen(breakers))

    def gauge(name: str) -> float | None:
        return registry.get_sample_value(
            "assetline_destination_breaker_open", {"destination": name}
        )

    assert (gauge("dam"), gauge("local")) == (0, 0)
    with caplog.at_level(logging.INFO, logger="agents.deliver.agent"):
        breakers["dam"].record_failure()
        assert (gauge("dam"), gauge("local")) == (1, 0)
        clock.now = 5.0
        assert gauge("dam") == 1  # half-open: still deferring all but the probe
        assert breakers["dam"].allow()
        breakers["dam"].record_success()
        assert gauge("dam") == 0
    levels = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [level for level, _ in levels] == [logging.WARNING, logging.INFO]
    assert all("dam" in message for _, message in levels)
