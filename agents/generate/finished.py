"""Finished generations, recorded before they are emitted, so a crash never pays twice.

Offsets are committed only past finished events, so after a crash every request after the last
committed offset comes round again, including those whose provider call had finished. The
generate stage therefore writes each finished generation to a table (changelog
``<prefix>.generations``, co-partitioned with ``.requests``) and waits for the broker's
acknowledgement before it emits the RawAsset; a request that comes round again with the same
(request id, attempt) and the same bytes gets the recorded RawAsset back instead of a new call.
The mechanics (records, the wait for a call under way, eviction) are
:mod:`agents.inference.paid_once`'s, shared with the AI judge's verdicts.

A record is compact: the RawAsset without its request (the request comes round with the event;
its SHA-256 is kept so a different request under a reused id is never answered with someone
else's asset) and its alerts. The asset bytes are already in the blob store.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from agents.generate.generate_one import GenerationOutcome
from agents.inference.paid_once import (
    Found,
    OnceMetrics,
    PaidOnce,
    RecordStore,
    read_record,
)
from agents.inference.paid_once import digest_of as request_digest
from agents.inference.paid_once import encode_record as _encode_fields
from schemas.records import Alert, GenerationRequest, RawAsset

__all__ = [
    "REUSED_HEADER",
    "Reuse",
    "encode_record",
    "lookup",
    "record_key",
    "request_digest",
    "reuse_metrics",
]

#: Header on a ``.raw`` record whose generation was recorded earlier and reused (no new call).
REUSED_HEADER = "assetline.generation.reused"


def record_key(request_id: str, attempt: int) -> bytes:
    """One record per (request, attempt): a re-generation never overwrites its earlier attempt."""
    return f"{request_id}|{attempt}".encode()


def _fields(outcome: GenerationOutcome) -> dict[str, Any]:
    """The outcome without its request, which travels with the event anyway."""
    return {
        "raw": outcome.raw.model_dump(mode="json", exclude={"request"}),
        "alerts": [alert.model_dump(mode="json") for alert in outcome.alerts],
    }


def _rebuilt(body: dict[str, Any], request: GenerationRequest) -> GenerationOutcome:
    raw = RawAsset.model_validate({**body["raw"], "request": request})
    alerts = [Alert.model_validate(alert) for alert in body.get("alerts", [])]
    return GenerationOutcome(raw, alerts)


def encode_record(outcome: GenerationOutcome, digest: str, at_ms: int) -> bytes:
    """``<13-digit epoch ms> <json>``: the outcome without its request, which travels anyway."""
    return _encode_fields(_fields(outcome), digest, at_ms)


def lookup(
    value: bytes | None, request: GenerationRequest, digest: str
) -> Found[GenerationOutcome]:
    """The recorded outcome for ``request`` (same bytes), rebuilt around the current request."""
    return read_record(value, digest, lambda body: _rebuilt(body, request))


def reuse_metrics(registry: CollectorRegistry) -> OnceMetrics:
    # Literal names: the dashboard test finds the metrics the code exposes by reading it.
    return OnceMetrics(
        reused=Counter(
            "assetline_generations_reused",
            "Requests answered from a recorded finished generation: no provider call.",
            registry=registry,
        ),
        ignored=Counter(
            "assetline_generation_records_ignored",
            "Records found for a request but not reused (unreadable, different_request).",
            ["reason"],
            registry=registry,
        ),
        record_failed=Counter(
            "assetline_generation_records_failed",
            "Finished generations emitted without a durable record (the broker refused it).",
            registry=registry,
        ),
        evicted=Counter(
            "assetline_generation_records_evicted",
            "Records dropped from the worker's memory after the retention period.",
            registry=registry,
        ),
    )


@dataclass
class Reuse:
    """Answer a request from its record, or generate, record and acknowledge, then return."""

    store: RecordStore
    metrics: OnceMetrics
    clock: Callable[[], float] = time.time
    _once: PaidOnce[GenerationOutcome] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._once = PaidOnce(self.store, self.metrics, _fields, clock=self.clock)

    async def outcome(
        self,
        request: GenerationRequest,
        value: bytes,
        generate: Callable[[], Awaitable[GenerationOutcome]],
    ) -> tuple[GenerationOutcome, bool]:
        """The outcome to emit for ``request`` (consumed as ``value``); True when reused."""
        return await self._once.outcome(
            record_key(request.request_id, request.attempt),
            request_digest(value),
            generate,
            decode=lambda body: _rebuilt(body, request),
            share=lambda shared: _around(shared, request),
            who=f"{request.request_id} attempt {request.attempt}",
        )


def _around(shared: GenerationOutcome, request: GenerationRequest) -> GenerationOutcome:
    """The outcome of the generation under way, around this copy's request (same bytes)."""
    raw = shared.raw.model_copy(update={"request": request})
    return GenerationOutcome(raw, list(shared.alerts))
