"""Finished generations: recorded before they are emitted, reused when the request comes round."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from agents.generate.finished import (
    Reuse,
    encode_record,
    lookup,
    record_key,
    request_digest,
    reuse_metrics,
)
from agents.generate.generate_one import GenerationOutcome
from agents.inference.paid_once import Eviction, OnceMetrics, recorded_at_ms
from schemas.records import (
    Alert,
    AlertKind,
    AssetKind,
    BlobRef,
    GenerationError,
    GenerationRequest,
    ProviderAttempt,
    RawAsset,
)
from tests.support.record_store import DictStore

AT_MS = 1_790_000_000_000


def request(attempt: int = 1, **kw: Any) -> GenerationRequest:
    fields: dict[str, Any] = {
        "request_id": "r-1",
        "idempotency_key": "r-1",
        "tenant": "acme",
        "campaign_id": "spring",
        "kind": AssetKind.TEXT,
        "prompt_template": "Copy for ${p}",
        "variables": {"p": "runners"},
        "attempt": attempt,
    }
    fields.update(kw)
    return GenerationRequest(**fields)


def outcome(req: GenerationRequest, *, error: bool = False) -> GenerationOutcome:
    blob = BlobRef(uri="file:///b/ab/cd", sha256="ab" * 32, size=12, media_type="text/plain")
    raw = RawAsset(
        request=req,
        blob=None if error else blob,
        error=GenerationError(code="provider.refused", message="no") if error else None,
        provider="local",
        model_version="m-1",
        latency_ms=2001.5,
        cost=0.0042,
        alias="copy",
        attempts=[ProviderAttempt(provider="local", model="m-1", cost=0.0042, input_tokens=12)],
    )
    alert = Alert(alert_id="a-1", kind=AlertKind.BREAKER_OPENED, message="open", provider="local")
    return GenerationOutcome(raw, [alert])


VALUE = b"the request's bytes as consumed"


def test_key_is_per_request_and_attempt() -> None:
    assert record_key("r-1", 1) == b"r-1|1"
    assert record_key("r-1", 2) != record_key("r-1", 1)
    assert record_key("a|1", 2) != record_key("a", 12)


@pytest.mark.parametrize("error", [False, True])
def test_a_record_gives_back_the_same_outcome(error: bool) -> None:
    req = request()
    done = outcome(req, error=error)
    value = encode_record(done, request_digest(VALUE), AT_MS)
    found = lookup(value, req, request_digest(VALUE))
    assert found.miss is None
    assert found.outcome == done  # the RawAsset (generated_at included) and its alerts


def test_the_record_leaves_out_the_request_and_stamps_the_time() -> None:
    req = request(prompt_template="x" * 5000)
    value = encode_record(outcome(req), request_digest(VALUE), AT_MS)
    assert b"xxxxx" not in value  # the request travels with the event, not in the record
    assert recorded_at_ms(value) == AT_MS
    assert len(value) < 1000


def test_nothing_recorded_is_a_miss() -> None:
    assert lookup(None, request(), request_digest(VALUE)) == (None, "absent")


def test_different_request_bytes_under_the_same_id_are_not_answered() -> None:
    """Someone else's request under a reused id must not get this asset."""
    req = request()
    value = encode_record(outcome(req), request_digest(VALUE), AT_MS)
    other = request(tenant="globex")
    assert lookup(value, other, request_digest(b"other bytes")) == (None, "different_request")


@pytest.mark.parametrize(
    "value",
    [
        b"garbage",
        b"1790000000000 {not json",
        b"1790000000000 " + json.dumps({"format": 99}).encode(),
        b"1790000000000 " + json.dumps({"format": 1, "request_sha256": "x"}).encode(),
    ],
)
def test_an_unreadable_record_is_ignored(value: bytes) -> None:
    digest = "x" if b'"x"' in value else request_digest(VALUE)
    assert lookup(value, request(), digest) == (None, "unreadable")


def test_a_record_from_a_newer_version_with_unknown_fields_is_ignored() -> None:
    req = request()
    value = encode_record(outcome(req), request_digest(VALUE), AT_MS)
    body = json.loads(value[14:])
    body["raw"]["new_field"] = 1
    newer = value[:14] + json.dumps(body).encode()
    assert lookup(newer, req, request_digest(VALUE)) == (None, "unreadable")


class Provider:
    """Counts the generations it is asked for, like the paid provider would bill them."""

    def __init__(self, req: GenerationRequest) -> None:
        self.calls = 0
        self.made = outcome(req)

    async def __call__(self) -> GenerationOutcome:
        self.calls += 1
        return self.made


def reuse(store: DictStore) -> tuple[Reuse, OnceMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = reuse_metrics(registry)
    return Reuse(store, metrics, clock=lambda: AT_MS / 1000), metrics, registry


def test_the_second_time_round_the_provider_is_not_called() -> None:
    store = DictStore()
    subject, _, registry = reuse(store)
    req = request()
    provider = Provider(req)
    first, reused_first = asyncio.run(subject.outcome(req, VALUE, provider))
    again, reused_again = asyncio.run(subject.outcome(req, VALUE, provider))
    assert provider.calls == 1
    assert (reused_first, reused_again) == (False, True)
    assert again == first == provider.made
    assert store.writes == [b"r-1|1"]  # recorded once, not again on reuse
    assert registry.get_sample_value("assetline_generations_reused_total") == 1.0


def test_a_new_attempt_calls_the_provider_and_keeps_the_earlier_record() -> None:
    store = DictStore()
    subject, _, _ = reuse(store)
    one, two = request(1), request(2, feedback=["shorter"])
    asyncio.run(subject.outcome(one, VALUE, Provider(one)))
    provider = Provider(two)
    _, reused = asyncio.run(subject.outcome(two, b"attempt 2 bytes", provider))
    assert (provider.calls, reused) == (1, False)
    assert set(store.data) == {b"r-1|1", b"r-1|2"}
    # attempt 1 redelivered after attempt 2 was recorded: still its own record
    _, reused = asyncio.run(subject.outcome(one, VALUE, Provider(one)))
    assert reused is True


def test_a_refused_record_still_emits_and_is_counted() -> None:
    store = DictStore(refuse=True)
    subject, _, registry = reuse(store)
    req = request()
    provider = Provider(req)
    done, reused = asyncio.run(subject.outcome(req, VALUE, provider))
    assert (provider.calls, reused) == (1, False)
    assert done == provider.made
    assert registry.get_sample_value("assetline_generation_records_failed_total") == 1.0


def test_a_different_request_is_generated_and_counted() -> None:
    store = DictStore()
    subject, _, registry = reuse(store)
    req = request()
    asyncio.run(subject.outcome(req, VALUE, Provider(req)))
    provider = Provider(req)
    _, reused = asyncio.run(subject.outcome(req, b"other bytes", provider))
    assert (provider.calls, reused) == (1, False)
    sample = registry.get_sample_value(
        "assetline_generation_records_ignored_total", {"reason": "different_request"}
    )
    assert sample == 1.0


def test_the_record_is_acknowledged_before_the_outcome_is_returned() -> None:
    """Emitting before the write is acknowledged would let a crash pay for the call again."""
    order: list[str] = []

    class SlowStore(DictStore):
        async def record(self, key: bytes, value: bytes) -> None:
            await asyncio.sleep(0)
            order.append("acknowledged")
            await super().record(key, value)

    subject, _, _ = reuse(SlowStore())
    req = request()

    async def run() -> None:
        await subject.outcome(req, VALUE, Provider(req))
        order.append("returned")

    asyncio.run(run())
    assert order == ["acknowledged", "returned"]


def test_eviction_drops_records_older_than_the_retention_only() -> None:
    req = request()
    old = encode_record(outcome(req), "d", AT_MS - 10_000)
    young = encode_record(outcome(req), "d", AT_MS - 1_000)
    store = {b"old|1": old, b"young|1": young, b"junk|1": b"no timestamp"}
    evicted = asyncio.run(Eviction(store, retention_ms=5_000, batch=1).sweep(AT_MS))
    assert evicted == 2
    assert store == {b"young|1": young}


class GatedProvider(Provider):
    """A provider call that is in flight until the test opens the gate."""

    def __init__(self, req: GenerationRequest, fail: bool = False) -> None:
        super().__init__(req)
        self.gate = asyncio.Event()
        self.fail = fail

    async def __call__(self) -> GenerationOutcome:
        self.calls += 1
        await self.gate.wait()
        if self.fail:
            raise RuntimeError("provider fell over")
        return self.made


def test_a_copy_arriving_while_its_generation_is_under_way_waits_for_it() -> None:
    """A refetch delivers a second copy of an event still in progress: one call, not two."""
    store = DictStore()
    subject, _, registry = reuse(store)
    req = request()
    provider = GatedProvider(req)

    async def run() -> list[tuple[GenerationOutcome, bool]]:
        first = asyncio.create_task(subject.outcome(req, VALUE, provider))
        await asyncio.sleep(0)
        second = asyncio.create_task(subject.outcome(req, VALUE, provider))
        await asyncio.sleep(0)
        provider.gate.set()
        return [await first, await second]

    (first, reused_first), (second, reused_second) = asyncio.run(run())
    assert provider.calls == 1
    assert (reused_first, reused_second) == (False, True)
    assert second.raw == first.raw
    assert store.writes == [b"r-1|1"]
    assert registry.get_sample_value("assetline_generations_reused_total") == 1.0


def test_a_copy_of_a_failed_generation_makes_its_own() -> None:
    store = DictStore()
    subject, _, _ = reuse(store)
    req = request()
    failing = GatedProvider(req, fail=True)
    working = Provider(req)

    async def run() -> tuple[BaseException | None, tuple[GenerationOutcome, bool]]:
        first = asyncio.create_task(subject.outcome(req, VALUE, failing))
        await asyncio.sleep(0)
        second = asyncio.create_task(subject.outcome(req, VALUE, working))
        await asyncio.sleep(0)
        failing.gate.set()
        results = await asyncio.gather(first, return_exceptions=True)
        error = results[0] if isinstance(results[0], BaseException) else None
        return error, await second

    error, (made, reused) = asyncio.run(run())
    assert isinstance(error, RuntimeError)
    assert (working.calls, reused) == (1, False)
    assert made == working.made


def test_a_different_request_under_the_same_key_does_not_wait_for_another_generation() -> None:
    store = DictStore()
    subject, _, _ = reuse(store)
    req = request()
    first = GatedProvider(req)
    other = Provider(req)

    async def run() -> bool:
        running = asyncio.create_task(subject.outcome(req, VALUE, first))
        await asyncio.sleep(0)
        _, reused = await subject.outcome(req, b"other bytes", other)
        first.gate.set()
        await running
        return reused

    assert asyncio.run(run()) is False
    assert other.calls == 1
