"""Reading the dead-letter topic back: list, filter, and re-drive parked messages.

A dead-lettered message keeps its original key, value and headers, and the ``assetline.dlq.*``
headers say which stage parked it, why, and where it came from (:mod:`streams.dead_letters`).
Re-driving sends it back to that source as a new attempt (see :mod:`assetline.replay.rewrite`),
so re-driving the same message twice still ends in one completion per (request, attempt).
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

from aiokafka import ConsumerRecord

from agents.deliver.deferral import deferral_of
from assetline.replay.republish import BatchSender, open_producer
from assetline.replay.rewrite import Rewriter, kind_of, replay_headers, resubmission_marks
from schemas.attempts import generation_of
from schemas.records import BlobRef
from streams.blobs import BlobError, BlobStore
from streams.codecs import CodecError
from streams.dead_letters import (
    HEADER_PREFIX,
    PARKED_MEDIA_TYPE,
    VALUE_PARKED,
    VALUE_SHA256,
    VALUE_SIZE,
    header_map,
)
from streams.kafka import read_to_end
from streams.kafka_security import start_client
from streams.settings import Settings
from streams.signing import RequestMarker
from streams.topics import TopicNames


@dataclass(frozen=True)
class DeadLetter:
    """One record of the dead-letter topic, with its headers read back."""

    partition: int
    offset: int
    time: str
    stage: str
    code: str
    reason: str
    source_topic: str
    source_partition: int | None
    source_offset: int | None
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes], ...]

    @property
    def source(self) -> str:
        return f"{self.source_topic}/{self.source_partition}/{self.source_offset}"


def _int_or_none(text: str | None) -> int | None:
    return int(text) if text is not None and text.lstrip("-").isdigit() else None


def from_record(record: ConsumerRecord[bytes, bytes]) -> DeadLetter:
    """Headers missing (a message put there by hand) read as empty, never as an error."""
    raw_headers = tuple(record.headers or ())
    h = header_map(raw_headers)

    def get(name: str) -> str | None:
        return h.get(HEADER_PREFIX + name)

    return DeadLetter(
        partition=record.partition,
        offset=record.offset,
        time=get("time") or "",
        stage=get("stage") or "",
        code=get("error.code") or "",
        reason=get("error.reason") or "",
        source_topic=get("source.topic") or "",
        source_partition=_int_or_none(get("source.partition")),
        source_offset=_int_or_none(get("source.offset")),
        key=record.key,
        value=record.value or b"",
        headers=raw_headers,
    )


def parse_position(text: str) -> tuple[int | None, int]:
    """``12`` (offset 12 in any partition) or ``2:12`` (partition 2), as ``dlq list`` shows;
    ``2@12`` reads as ``2:12``."""
    partition, sep, offset = text.strip().replace("@", ":", 1).rpartition(":")
    if not offset.isdigit() or (sep and not partition.isdigit()):
        raise ValueError(f"expected OFFSET or PARTITION:OFFSET, got {text!r}")
    return (int(partition) if sep else None), int(offset)


def _at(letter: DeadLetter, positions: Sequence[tuple[int | None, int]]) -> bool:
    return any(o == letter.offset and (p is None or p == letter.partition) for p, o in positions)


def select(
    letters: Iterable[DeadLetter],
    *,
    codes: Sequence[str] = (),
    positions: Sequence[tuple[int | None, int]] = (),
    limit: int | None = None,
) -> list[DeadLetter]:
    """Dead letters with one of ``codes`` at one of ``positions`` (empty: any), oldest first."""
    out = [
        d
        for d in letters
        if (not codes or d.code in codes) and (not positions or _at(d, positions))
    ]
    out.sort(key=lambda d: (d.time, d.partition, d.offset))
    return out if limit is None else out[:limit]


def _cut(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def show_key(key: bytes | None) -> str:
    """The record key as text (the request id, usually); ``-`` when there is none.

    Shown because it names the request a dead letter belongs to even when its value is garbage.
    """
    if key is None:
        return "-"
    text = key.decode("utf-8", "backslashreplace")
    if not text.isprintable():  # control characters would break the table's lines
        text = ascii(text)[1:-1]
    return _cut(text, 60)


def table(letters: Sequence[DeadLetter], reason_width: int = 60) -> str:
    """A plain-text table; the offset shown is ``partition:offset`` of the dead-letter topic."""
    rows = [("offset", "time", "stage", "code", "key", "reason", "source")]
    rows += [
        (
            f"{d.partition}:{d.offset}",
            d.time,
            d.stage,
            d.code,
            show_key(d.key),
            _cut(d.reason, reason_width),
            d.source,
        )
        for d in letters
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


async def read_deadletters(kafka: Settings | str, names: TopicNames) -> list[DeadLetter]:
    return [from_record(r) for r in await read_to_end(kafka, names.deadletter)]


@dataclass(frozen=True)
class Redriven:
    """One dead letter and what became of it."""

    letter: DeadLetter
    target: str | None
    outcome: str  # "redriven", "verbatim", "undecodable", "no-source", "refused", "parked"
    request_id: str | None = None
    attempt: int | None = None
    #: The line's origin mark for a re-driven request (generate refuses attempt > 1 without).
    marks: tuple[tuple[str, bytes], ...] = ()


@dataclass
class RedriveReport:
    replay_id: str
    dry_run: bool
    items: list[Redriven] = field(default_factory=list)

    def count(self, outcome: str) -> int:
        return sum(1 for i in self.items if i.outcome == outcome)


def plan_one(
    letter: DeadLetter,
    names: TopicNames,
    rewriter: Rewriter,
    into: str | None,
    generation: int | None,
    marker: RequestMarker | None = None,
) -> tuple[Redriven, bytes | None]:
    """Where ``letter`` goes and the value it goes with (pure: no I/O).

    Records of a replayable topic become a new attempt; other line topics (say, review
    decisions) carry their own idempotency ids and are re-driven verbatim. A request the line
    would not have admitted (a forged attempt, an unsigned one) is ``refused``: re-driving it
    with the line's mark would let it take another request's id.
    """
    target = into or letter.source_topic
    if target == names.deliver_deferred:
        # A deferred delivery goes back where it was deferred from (agents/deliver/deferral.py):
        # there it is a new attempt like any other; the deferred topic would take it verbatim.
        target = deferral_of(letter.headers).source or ""
    if not target:
        return Redriven(letter, None, "no-source"), None
    kind = kind_of(names, target)
    if kind is None:
        return Redriven(letter, target, "verbatim"), letter.value
    try:
        out = rewriter.rewrite(kind, letter.value, generation)
    except CodecError:
        return Redriven(letter, target, "undecodable"), None
    marks = resubmission_marks(marker, kind, out, letter.value, letter.headers)
    if marks is None:
        return Redriven(letter, target, "refused", out.request_id, out.old_attempt), None
    item = Redriven(letter, target, "redriven", out.request_id, out.new_attempt, tuple(marks))
    return item, out.value


def unparked(letter: DeadLetter) -> DeadLetter | None:
    """``letter`` with its value read back when it was parked in the blob store for being too
    large to travel (``assetline.dlq.value.parked``); ``None`` when that value cannot be read
    here (another host's blob store, or gone). Only a blob-store file whose name and content
    both match the recorded SHA-256 is read. A letter with nothing parked comes back as is.
    """
    h = header_map(letter.headers)
    where = h.get(VALUE_PARKED)
    if where is None:
        return letter
    sha256 = h.get(VALUE_SHA256, "")
    url = urlparse(where)
    path = Path(unquote(url.path))
    if url.scheme != "file" or not sha256 or path.name != sha256:
        return None
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        return None
    return dataclasses.replace(letter, value=data)


async def unparked_from(letter: DeadLetter, blobs: BlobStore | None) -> DeadLetter | None:
    """:func:`unparked`, and a value parked in an S3 blob store read back through ``blobs``
    (the line's shared store) by its recorded SHA-256 and size, checked like any blob."""
    restored = unparked(letter)
    if restored is not None or blobs is None:
        return restored
    h = header_map(letter.headers)
    where, sha256, size = h.get(VALUE_PARKED, ""), h.get(VALUE_SHA256, ""), h.get(VALUE_SIZE, "")
    if urlparse(where).scheme != "s3" or not sha256 or not size.isdigit():
        return None
    ref = BlobRef(uri=where, sha256=sha256, size=int(size), media_type=PARKED_MEDIA_TYPE)
    try:
        data = await blobs.get_async(ref)
    except BlobError:
        return None
    return dataclasses.replace(letter, value=data)


async def redrive(
    kafka: Settings | str,
    names: TopicNames,
    letters: Sequence[DeadLetter],
    rewriter: Rewriter,
    *,
    into: str | None = None,
    generation: int | None = None,
    dry_run: bool = False,
    marker: RequestMarker | None = None,
    blobs: BlobStore | None = None,
) -> RedriveReport:
    """Send ``letters`` back (to their source topic, or ``into``), without dead-letter headers.

    Re-driven requests carry ``marker``'s origin mark (see :func:`plan_one`); values parked in
    an S3 blob store are read through ``blobs`` (see :func:`unparked_from`).
    """
    report = RedriveReport(str(uuid.uuid4()), dry_run)
    planned: list[tuple[Redriven, bytes]] = []
    for letter in letters:
        restored = await unparked_from(letter, blobs)
        if restored is None:
            report.items.append(Redriven(letter, into or letter.source_topic, "parked"))
            continue
        item, value = plan_one(restored, names, rewriter, into, generation, marker)
        report.items.append(item)
        if value is not None:
            planned.append((item, value))
    if dry_run or not planned:
        return report
    producer = open_producer(kafka)
    await start_client(producer, kafka)
    try:
        sender = BatchSender(producer)
        for item, value in planned:
            d = item.letter
            assert item.target is not None
            gen = generation_of(item.attempt) if item.attempt is not None else 0
            headers = replay_headers(
                d.headers,
                source_topic=names.deadletter,
                partition=d.partition,
                offset=d.offset,
                replay_id=report.replay_id,
                generation=gen,
                origin=d.source,
            )
            headers += item.marks
            key = d.key
            if key is None and item.request_id is not None:
                key = item.request_id.encode("utf-8")
            await sender.add(item.target, key, value, headers)
        await sender.wait()
    finally:
        await producer.stop()
    return report


def report_lines(report: RedriveReport) -> list[str]:
    """One line per dead letter of ``report``: where it went, or why it was skipped."""
    lines = []
    for item in report.items:
        d = item.letter
        where = f"{d.partition}:{d.offset} ({d.code or 'no code'})"
        if item.outcome == "redriven":
            lines.append(
                f"{where} -> {item.target} request {item.request_id} attempt {item.attempt}"
            )
        elif item.outcome == "verbatim":
            lines.append(f"{where} -> {item.target} as is (no request to re-attempt)")
        elif item.outcome == "undecodable":
            lines.append(f"{where} skipped: still not a valid record for {item.target}")
        elif item.outcome == "parked":
            lines.append(
                f"{where} skipped: its value was parked in a blob store not readable here "
                "(run on the worker's host)"
            )
        elif item.outcome == "refused":
            lines.append(
                f"{where} skipped: request {item.request_id} is not admissible (forged attempt "
                "or unsigned); the producer must send it again"
            )
        else:
            lines.append(f"{where} skipped: no source topic in its headers (use --into)")
    return lines
