"""Paid calls made once per input, however often the input's event comes round.

Offsets commit only past finished events, and a consumer fetches again whatever it has not
committed (after a crash, a rebalance, or one of :mod:`streams.safe_consumer`'s rewinds), so a
stage that pays a provider sees the same event again, sometimes while its first call is still
in flight. Such a stage records each finished call in a Faust table (a compacted changelog
co-partitioned with the stage's input) and waits for the broker's acknowledgement before it
emits the result; a copy of the event finds the record and reuses it, and a copy that arrives
while the call is under way in this worker waits for that call. The generate stage records its
generations (:mod:`agents.generate.finished`), the validate stage the AI judge's verdicts
(:mod:`agents.validate.judged`).

A record is ``<13-digit epoch ms> <json>``: the fixed-width timestamp lets the sweep that bounds
memory read a record's age without parsing JSON. The JSON carries a format version and the
SHA-256 of the input as consumed, so a different input under a reused key is never answered
with another input's outcome. A record this worker cannot read (say, from a newer version) is
ignored: the call is made again, which is the behaviour without records.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, Protocol, TypeVar

from aiokafka.errors import KafkaError
from prometheus_client import Counter

from streams.acks import acknowledged
from streams.traced_table import TracedTable

if TYPE_CHECKING:
    from streams.app import Line

log = logging.getLogger(__name__)

#: Version of a record's JSON body; another version is ignored (the call is made again).
FORMAT = 1

#: Width of a record's millisecond timestamp prefix (epoch ms has 13 digits until 2286).
AT_WIDTH = 13

#: How often a worker drops records past their retention from memory.
EVICTION_INTERVAL_S = 300.0

T = TypeVar("T")


def digest_of(value: bytes) -> str:
    """SHA-256 of an input's bytes as consumed; a redelivery is byte-identical."""
    return hashlib.sha256(value).hexdigest()


def stamped(body: Mapping[str, Any], at_ms: int) -> bytes:
    """``<13-digit epoch ms> <json>`` of ``body`` plus the format version: every record on a
    paid-call changelog, batch tickets included, so one sweep reads every record's age."""
    text = json.dumps({"format": FORMAT, **body}, separators=(",", ":"), ensure_ascii=False)
    return f"{at_ms:0{AT_WIDTH}d} {text}".encode()


def body_of(value: bytes) -> dict[str, Any] | None:
    """The JSON body of a record of this format version; None for anything else."""
    try:
        body = json.loads(value[AT_WIDTH + 1 :])
    except ValueError:
        return None
    return body if isinstance(body, dict) and body.get("format") == FORMAT else None


def encode_record(fields: Mapping[str, Any], digest: str, at_ms: int) -> bytes:
    """A paid call's record: ``fields`` and the SHA-256 of the input it answered."""
    return stamped({"request_sha256": digest, **fields}, at_ms)


def recorded_at_ms(value: bytes) -> int | None:
    """When a record was written, read from its prefix; ``None`` when it has none."""
    head = value[:AT_WIDTH]
    return int(head) if len(head) == AT_WIDTH and head.isdigit() else None


class Found(NamedTuple, Generic[T]):
    """The recorded outcome for an input, or why there is none to reuse."""

    outcome: T | None
    miss: str | None  # absent, unreadable, different_request; None when found


def read_record(
    value: bytes | None, digest: str, decode: Callable[[dict[str, Any]], T]
) -> Found[T]:
    """The outcome ``decode`` rebuilds from ``value`` when it is a readable record of the input
    with ``digest`` (``decode`` raising ValueError, TypeError, KeyError or AttributeError on a
    body it cannot read)."""
    if value is None:
        return Found(None, "absent")
    body = body_of(value)
    if body is None:
        return Found(None, "unreadable")
    if body.get("request_sha256") != digest:
        return Found(None, "different_request")
    try:
        return Found(decode(body), None)
    except (ValueError, TypeError, KeyError, AttributeError):
        return Found(None, "unreadable")


@dataclass(frozen=True)
class OnceMetrics:
    """What reuse saved and what it could not: one set per kind of paid call."""

    reused: Counter
    ignored: Counter
    record_failed: Counter
    evicted: Counter


class RecordStore(Protocol):
    """Where records live: a :class:`RecordTable` in a worker, a dict-backed store in tests."""

    def get(self, key: bytes) -> bytes | None: ...

    async def record(self, key: bytes, value: bytes) -> None: ...


@dataclass
class PaidOnce(Generic[T]):
    """Answer an input from its record, or make the call, record it, and only then return.

    A second copy of an event whose call is still under way in this worker (a refetch delivers
    copies of events still in progress) waits for that call instead of paying for its own:
    measured in the kill chaos scenario, a copy looked up the record while the first call was
    in flight, found none, and called the provider 0.4 s after the first answer.
    """

    store: RecordStore
    metrics: OnceMetrics
    #: The outcome's fields for the record (the input itself is not stored: it comes round).
    encode: Callable[[T], Mapping[str, Any]]
    clock: Callable[[], float] = time.time
    #: Record key -> (input digest, the call under way for it).
    _under_way: dict[bytes, tuple[str, asyncio.Future[T]]] = field(
        default_factory=dict, init=False, repr=False
    )

    async def outcome(
        self,
        key: bytes,
        digest: str,
        make: Callable[[], Awaitable[T]],
        *,
        decode: Callable[[dict[str, Any]], T],
        share: Callable[[T], T] = lambda outcome: outcome,
        who: str = "",
    ) -> tuple[T, bool]:
        """The outcome for the input with ``digest`` recorded under ``key``; True when reused.

        ``decode`` rebuilds an outcome from a record's body (see :func:`read_record`);
        ``share`` fits the outcome of the call under way to this copy. A new outcome is
        returned only once its record is acknowledged. If the broker refuses the record, the
        outcome is returned anyway: using it matters more, and at worst a crash before the
        offset commit pays again (counted).
        """
        found = read_record(self.store.get(key), digest, decode)
        if found.outcome is not None:
            self.metrics.reused.inc()
            log.debug("%s: reusing its recorded outcome", who or key)
            return found.outcome, True
        if found.miss != "absent":
            self.metrics.ignored.labels(found.miss).inc()
        running = self._under_way.get(key)
        if running is not None and running[0] == digest:
            try:
                shared = await asyncio.shield(running[1])
            except Exception:  # that call failed: this copy makes its own
                log.debug("%s: the call under way failed", who or key)
            else:
                self.metrics.reused.inc()
                return share(shared), True
        done: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._under_way[key] = (digest, done)
        try:
            outcome = await make()
            try:
                at_ms = int(self.clock() * 1000)
                await self.store.record(key, encode_record(self.encode(outcome), digest, at_ms))
            except KafkaError as exc:
                self.metrics.record_failed.inc()
                log.warning("%s: outcome not recorded (%s)", who or key, exc)
            done.set_result(outcome)
            return outcome, False
        except BaseException as exc:
            done.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
            done.exception()  # retrieved: nobody may be waiting
            raise
        finally:
            if self._under_way.get(key, (None, None))[1] is done:
                del self._under_way[key]


class RecordTable(TracedTable):
    """A table of records; :meth:`record` returns once the changelog write is acknowledged.

    Its records carry the request's trace like every record the line writes
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
            await acknowledged(write)

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


def install_record_table(
    line: Line, name: str, changelog_topic: Any, metrics: OnceMetrics
) -> RecordTable:
    """Declare a record table (changelog ``changelog_topic``, co-partitioned with the input of
    the stage that declares it) and the timer that drops its records past the retention."""
    settings = line.settings
    table = RecordTable(
        line.app,
        name=name,
        beacon=line.app.tables.beacon,
        changelog_topic=changelog_topic,
        key_type=bytes,
        value_type=bytes,
        partitions=settings.topic_partitions,
    )
    line.app.tables.add(table)

    async def evict_old_records() -> None:
        eviction = Eviction(table.data, settings.generation_record_retention_ms)
        metrics.evicted.inc(await eviction.sweep(int(time.time() * 1000)))

    evict_old_records.__name__ = evict_old_records.__qualname__ = f"evict_old_{name}"
    line.app.timer(interval=EVICTION_INTERVAL_S)(evict_old_records)
    return table
