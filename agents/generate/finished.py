"""Finished generations, recorded before they are emitted, so a crash never pays twice.

Offsets are committed only past finished events, so after a crash every request after the last
committed offset comes round again, including those whose provider call had finished. The
generate stage therefore writes each finished generation to a table (changelog
``<prefix>.generations``, co-partitioned with ``.requests``) and waits for the broker's
acknowledgement before it emits the RawAsset; a request that comes round again with the same
(request id, attempt) and the same bytes gets the recorded RawAsset back instead of a new call.

A record is compact: the RawAsset without its request (the request comes round with the event;
its SHA-256 is kept so a different request under a reused id is never answered with someone
else's asset), its alerts, and when it was recorded (a fixed-width prefix, so the sweep that
bounds memory reads a timestamp without parsing JSON). The asset bytes are already in the blob
store. A record this worker cannot read (say, from a newer version) is ignored: the call is made
again, which is the behaviour without records.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

from aiokafka.errors import KafkaError
from prometheus_client import CollectorRegistry, Counter
from pydantic import ValidationError

from agents.generate.generate_one import GenerationOutcome
from schemas.records import Alert, GenerationRequest, RawAsset
from streams.traced_table import TracedTable

log = logging.getLogger(__name__)

#: Header on a ``.raw`` record whose generation was recorded earlier and reused (no new call).
REUSED_HEADER = "assetline.generation.reused"

#: Version of the record's JSON body; another version is ignored (the call is made again).
FORMAT = 1

#: Width of the record's millisecond timestamp prefix (epoch ms has 13 digits until 2286).
_AT_WIDTH = 13


def record_key(request_id: str, attempt: int) -> bytes:
    """One record per (request, attempt): a re-generation never overwrites its earlier attempt."""
    return f"{request_id}|{attempt}".encode()


def request_digest(value: bytes) -> str:
    """SHA-256 of the request's bytes as consumed; a redelivery is byte-identical."""
    return hashlib.sha256(value).hexdigest()


def encode_record(outcome: GenerationOutcome, digest: str, at_ms: int) -> bytes:
    """``<13-digit epoch ms> <json>``: the outcome without its request, which travels anyway."""
    body = {
        "format": FORMAT,
        "request_sha256": digest,
        "raw": outcome.raw.model_dump(mode="json", exclude={"request"}),
        "alerts": [alert.model_dump(mode="json") for alert in outcome.alerts],
    }
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    return f"{at_ms:0{_AT_WIDTH}d} {text}".encode()


def recorded_at_ms(value: bytes) -> int | None:
    """When a record was written, read from its prefix; ``None`` when it has none."""
    head = value[:_AT_WIDTH]
    return int(head) if len(head) == _AT_WIDTH and head.isdigit() else None


class Lookup(NamedTuple):
    """What a record says about a request: its outcome to reuse, or why there is none."""

    outcome: GenerationOutcome | None
    miss: str | None  # absent, unreadable, different_request; None when reused


def lookup(value: bytes | None, request: GenerationRequest, digest: str) -> Lookup:
    """The recorded outcome for ``request`` (same bytes), rebuilt around the current request."""
    if value is None:
        return Lookup(None, "absent")
    try:
        body = json.loads(value[_AT_WIDTH + 1 :])
        if body.get("format") != FORMAT:
            return Lookup(None, "unreadable")
        if body.get("request_sha256") != digest:
            return Lookup(None, "different_request")
        raw = RawAsset.model_validate({**body["raw"], "request": request})
        alerts = [Alert.model_validate(alert) for alert in body.get("alerts", [])]
    except (ValueError, TypeError, KeyError, AttributeError, ValidationError):
        return Lookup(None, "unreadable")
    return Lookup(GenerationOutcome(raw, alerts), None)


class ReuseMetrics(NamedTuple):
    reused: Counter
    ignored: Counter
    record_failed: Counter
    evicted: Counter

    @classmethod
    def build(cls, registry: CollectorRegistry) -> ReuseMetrics:
        return cls(
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


class RecordStore(Protocol):
    """Where records live: the table in a worker, a dict-backed store in tests."""

    def get(self, key: bytes) -> bytes | None: ...

    async def record(self, key: bytes, value: bytes) -> None: ...


@dataclass
class Reuse:
    """Answer a request from its record, or generate, record and acknowledge, then return.

    A second copy of an event whose generation is still under way in this worker (a refetch
    delivers copies of events still in progress) waits for that generation instead of paying
    for its own: measured in the kill chaos scenario, a copy looked up the record while the
    first call was in flight, found none, and called the provider 0.4 s after the first answer.
    """

    store: RecordStore
    metrics: ReuseMetrics
    clock: Callable[[], float] = time.time
    #: Record key -> (request digest, the generation under way for it).
    _under_way: dict[bytes, tuple[str, asyncio.Future[GenerationOutcome]]] = field(
        default_factory=dict, init=False, repr=False
    )

    async def outcome(
        self,
        request: GenerationRequest,
        value: bytes,
        generate: Callable[[], Awaitable[GenerationOutcome]],
    ) -> tuple[GenerationOutcome, bool]:
        """The outcome to emit for ``request`` (consumed as ``value``); True when reused.

        A new outcome is returned only once its record is acknowledged. If the broker refuses
        the record, the outcome is returned anyway: emitting it matters more, and at worst a
        crash before the offset commit pays for this call again (counted).
        """
        key = record_key(request.request_id, request.attempt)
        digest = request_digest(value)
        found = lookup(self.store.get(key), request, digest)
        if found.outcome is not None:
            self.metrics.reused.inc()
            log.debug("%s attempt %d: reusing its recorded generation", *_who(request))
            return found.outcome, True
        if found.miss != "absent":
            self.metrics.ignored.labels(found.miss).inc()
        running = self._under_way.get(key)
        if running is not None and running[0] == digest:
            try:
                shared = await asyncio.shield(running[1])
            except Exception:  # that generation failed: this copy makes its own
                log.debug("%s attempt %d: the generation under way failed", *_who(request))
            else:
                self.metrics.reused.inc()
                return _around(shared, request), True
        done: asyncio.Future[GenerationOutcome] = asyncio.get_running_loop().create_future()
        self._under_way[key] = (digest, done)
        try:
            outcome = await generate()
            try:
                at_ms = int(self.clock() * 1000)
                await self.store.record(key, encode_record(outcome, digest, at_ms))
            except KafkaError as exc:
                self.metrics.record_failed.inc()
                log.warning("%s attempt %d: generation not recorded (%s)", *_who(request), exc)
            done.set_result(outcome)
            return outcome, False
        except BaseException as exc:
            done.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
            done.exception()  # retrieved: nobody may be waiting
            raise
        finally:
            if self._under_way.get(key, (None, None))[1] is done:
                del self._under_way[key]


def _around(shared: GenerationOutcome, request: GenerationRequest) -> GenerationOutcome:
    """The outcome of the generation under way, around this copy's request (same bytes)."""
    raw = shared.raw.model_copy(update={"request": request})
    return GenerationOutcome(raw, list(shared.alerts))


def _who(request: GenerationRequest) -> tuple[str, int]:
    return request.request_id, request.attempt


class GenerationRecords(TracedTable):
    """The finished-generations table; :meth:`record` returns the changelog write to await.

    Its ``.generations`` records carry the request's trace like every record the line writes
    (:class:`streams.traced_table.TracedTable`); nothing settles them later, so no trace is
    kept per key.

    Faust's ``self[key] = value`` only queues the changelog record; setting an item calls
    ``send_changelog`` synchronously, so the future it returns is the one of this write.
    """

    remember_traces = False
    _last_write: Any = None

    async def record(self, key: bytes, value: bytes) -> None:
        """``self[key] = value``, returning once the broker has acknowledged the record."""
        self[key] = value
        write, self._last_write = self._last_write, None
        if write is not None:
            await write

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> Any:
        write = super().send_changelog(partition, key, value, key_serializer, value_serializer)
        self._last_write = write
        return write


@dataclass
class Eviction:
    """Drops local records older than the retention, so a long-running worker's memory is
    bounded like the changelog (whose ``retention.ms`` bounds what a restart reads back)."""

    store: MutableMapping[bytes, bytes]
    retention_ms: int
    batch: int = 10_000

    async def sweep(self, now_ms: int) -> int:
        """Remove records written before ``now_ms - retention_ms``; returns how many.

        A snapshot of the keys is walked in batches, yielding to the loop between them.
        Only the local copy is dropped: the changelog forgets them by itself.
        """
        cutoff = now_ms - self.retention_ms
        keys = list(self.store.keys())
        evicted = 0
        for start in range(0, len(keys), self.batch):
            for key in keys[start : start + self.batch]:
                value = self.store.get(key)
                if value is None:
                    continue
                at = recorded_at_ms(value)
                if at is None or at < cutoff:
                    self.store.pop(key, None)
                    evicted += 1
            await asyncio.sleep(0)
        return evicted
