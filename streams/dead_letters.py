"""Dead-letter routing: a message a stage cannot process is parked, never dropped.

The dead-letter record keeps the original key, value and headers, and adds headers that say
what went wrong and where the message came from, so it can be inspected and re-driven.

A dead letter must always be writable, or the event it parks is lost: :func:`fit_dead_letter`
shrinks one that would exceed the producer's limit (the value parked in the blob store, or
else truncated; oversized original headers dropped; an oversized key cut), and headers say so.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka.record.default_records import DefaultRecordBatchBuilder

from streams.blobs import BlobStore
from streams.trace_context import TRACEPARENT

HEADER_PREFIX = "assetline.dlq."
#: Set when the original value was too large to travel: where it is parked (a blob URI).
VALUE_PARKED = HEADER_PREFIX + "value.parked"
#: Set when the value was cut instead (parking failed): the original size in bytes.
VALUE_TRUNCATED = HEADER_PREFIX + "value.truncated"
VALUE_SIZE = HEADER_PREFIX + "value.size"
VALUE_SHA256 = HEADER_PREFIX + "value.sha256"
HEADERS_DROPPED = HEADER_PREFIX + "headers.dropped"
KEY_TRUNCATED = HEADER_PREFIX + "key.truncated"
#: An oversized key is cut to this many bytes (it only picks the partition here).
KEY_KEEP = 256
#: Media type of a dead-letter value parked in the blob store (opaque bytes, as received).
PARKED_MEDIA_TYPE = "application/octet-stream"

Headers = list[tuple[str, bytes]]
#: Stores a dead-letter value and returns where (a blob URI); awaited, so a remote store's
#: network call never blocks the event loop.
Park = Callable[[bytes], Awaitable[str]]
log = logging.getLogger(__name__)


def deadletter_headers(
    *,
    stage: str,
    code: str,
    reason: str,
    topic: str,
    partition: int,
    offset: int,
    original: Iterable[tuple[str, bytes]] = (),
    now: datetime | None = None,
) -> list[tuple[str, bytes]]:
    """Original headers first, then ours (replacing any earlier dead-letter headers)."""
    kept = [(k, v) for k, v in original if not k.startswith(HEADER_PREFIX)]
    when = (now or datetime.now(UTC)).isoformat(timespec="milliseconds")
    ours = {
        "stage": stage,
        "error.code": code,
        "error.reason": reason[:2000],
        "source.topic": topic,
        "source.partition": str(partition),
        "source.offset": str(offset),
        "time": when,
    }
    return kept + [(HEADER_PREFIX + k, v.encode("utf-8")) for k, v in ours.items()]


def header_map(headers: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    """Headers as text, for reading dead-letter reasons back (last one wins)."""
    return {k: v.decode("utf-8", "replace") for k, v in headers or ()}


def record_size(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]]
) -> int:
    """Bytes of a one-record batch, as the producer counts them against max_request_size."""
    counted = [(k, v or b"") for k, v in headers]  # a header may carry no value at all
    size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, counted)
    return size


@dataclass(frozen=True)
class DeadLetterRecord:
    """What is actually sent to the dead-letter topic."""

    key: bytes | None
    value: bytes
    headers: Headers


async def fit_dead_letter(
    key: bytes | None,
    value: bytes,
    headers: Sequence[tuple[str, bytes]],
    *,
    limit: int,
    park: Park | None = None,
) -> DeadLetterRecord:
    """The dead letter, shrunk until it fits ``limit`` bytes; unchanged when it already fits.

    In order, until it fits: the value is parked by ``park`` (awaited; it returns where, e.g. a
    blob URI); original (non ``assetline.dlq.``) headers but ``traceparent`` are dropped; the
    key is cut to :data:`KEY_KEEP` bytes; the value is truncated (when parking was impossible
    or failed).
    Every step adds a header saying so, and the value's size and SHA-256 are always added, so
    nothing is altered silently.
    """
    headers = list(headers)
    if record_size(key, value, headers) <= limit:
        return DeadLetterRecord(key, value, headers)
    digest = hashlib.sha256(value).hexdigest()
    headers += [(VALUE_SIZE, str(len(value)).encode()), (VALUE_SHA256, digest.encode())]
    where = None
    if park is not None:
        try:
            where = await park(value)
        except Exception as exc:  # a full disk must not lose the dead letter: truncate instead
            log.error("could not park a %d-byte dead-letter value: %s", len(value), exc)
    if where is not None:
        value = b""
        headers.append((VALUE_PARKED, where.encode("utf-8")))
    if record_size(key, value, headers) > limit:
        ours = [(k, v) for k, v in headers if k.startswith(HEADER_PREFIX) or k == TRACEPARENT]
        if len(ours) < len(headers):
            headers = [*ours, (HEADERS_DROPPED, str(len(headers) - len(ours)).encode())]
    if key is not None and len(key) > KEY_KEEP and record_size(key, value, headers) > limit:
        headers.append((KEY_TRUNCATED, str(len(key)).encode()))
        key = key[:KEY_KEEP]
    if record_size(key, value, headers) > limit:
        headers.append((VALUE_TRUNCATED, str(len(value)).encode()))
        # Varint lengths only shrink as the value does, so cutting the excess always suffices.
        excess = record_size(key, value, headers) - limit
        value = value[: max(0, len(value) - excess)]
    return DeadLetterRecord(key, value, headers)


async def dead_letter_record(
    *,
    stage: str,
    code: str,
    reason: str,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes,
    original: Iterable[tuple[str, bytes]],
    limit: int,
    park: Park | None,
    logger: logging.Logger,
) -> DeadLetterRecord:
    """The dead letter of one message, logged, labelled and fitted: what every stage writes.

    One place for the warning line, the ``assetline.dlq.`` headers (:func:`deadletter_headers`)
    and the shrinking to ``limit`` (:func:`fit_dead_letter`; ``park`` is usually
    :func:`park_value` on the line's blob store), so the Faust stages (``StageIO``) and the
    notify stage's own producer cannot drift apart. Sending, and what to do when the send
    fails, stays with the caller: each guards its offsets its own way. ``logger`` is the
    caller's, so log lines keep their source.
    """
    logger.warning("%s: dead-lettering %s[%s]@%s: %s", stage, topic, partition, offset, reason)
    headers = deadletter_headers(
        stage=stage,
        code=code,
        reason=reason,
        topic=topic,
        partition=partition,
        offset=offset,
        original=original,
    )
    return await fit_dead_letter(key, value, headers, limit=limit, park=park)


async def park_value(blobs: BlobStore, value: bytes) -> str:
    """Store a dead-letter value too large to travel; its blob URI goes in a header.

    Through ``put_async``: on the S3 store a put is HTTP calls, which must not stall the
    event loop (every partition of the worker) while a stage dead-letters one message.
    """
    ref = await blobs.put_async(value, PARKED_MEDIA_TYPE)
    return ref.uri
