"""A replayed record is the same request as a new attempt, with headers saying where it came from.

The attempt a replay carries is computed by :func:`schemas.attempts.replay_attempt` (the
numbering is part of the contract: the deliver ledger and the validate stage read it too).
By default the generation is the source record's own plus one; pass one explicitly to start a
new replay campaign over records that were already replayed.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Final

from schemas.attempts import replay_attempt
from schemas.records import GenerationRequest
from streams.codecs import Codecs, RecordValidationError
from streams.dead_letters import HEADER_PREFIX as DLQ_PREFIX
from streams.signing import RequestMarker, without_marks
from streams.topics import TopicNames

HEADER_PREFIX: Final = "assetline.replay."


class RecordKind(StrEnum):
    """What a replayable topic holds: each embeds the request whose attempt is bumped."""

    REQUEST = "request"  # GenerationRequest
    RAW = "raw"  # RawAsset.request
    VALIDATED = "validated"  # ValidatedAsset.raw.request


#: TopicNames fields that can be replayed, and what they hold.
REPLAYABLE: Final[dict[str, RecordKind]] = {
    "requests": RecordKind.REQUEST,
    "requests_urgent": RecordKind.REQUEST,  # HIGH requests' intake: a re-drive goes back there
    "raw": RecordKind.RAW,
    "approved": RecordKind.VALIDATED,
    "rejected": RecordKind.VALIDATED,
    "review": RecordKind.VALIDATED,
}


def kind_of(names: TopicNames, topic: str) -> RecordKind | None:
    """The kind of a full topic name of this line, or None when it is not replayable."""
    for field_name, kind in REPLAYABLE.items():
        if getattr(names, field_name) == topic:
            return kind
    return None


@dataclass(frozen=True)
class Rewritten:
    """A re-encoded record and what changed in it."""

    value: bytes
    request_id: str
    old_attempt: int
    new_attempt: int
    #: The embedded request as it was read (before the bump), for authenticity checks.
    source: GenerationRequest | None = field(default=None, compare=False, repr=False)

    @property
    def superseded(self) -> bool:
        """The source already is at (or past) the wanted generation: replaying it is a no-op."""
        return self.new_attempt <= self.old_attempt


class Rewriter:
    """Decode with the kind's codec, bump the embedded request's attempt, encode again."""

    def __init__(self, codecs: Codecs) -> None:
        self.codecs = codecs

    def request_of(self, kind: RecordKind, value: bytes) -> GenerationRequest:
        """The embedded request; raises :class:`~streams.codecs.CodecError` on bad bytes."""
        if kind is RecordKind.REQUEST:
            return self.codecs.request.decode(value)
        if kind is RecordKind.RAW:
            return self.codecs.raw.decode(value).request
        return self.codecs.validated.decode(value).raw.request

    def rewrite(self, kind: RecordKind, value: bytes, generation: int | None) -> Rewritten:
        """Raises :class:`~streams.codecs.CodecError` when the value is not a ``kind``."""
        codecs = self.codecs
        if kind is RecordKind.REQUEST:
            request = codecs.request.decode(value)
            new = _bumped(request, generation)
            out = codecs.request.encode(new)
        elif kind is RecordKind.RAW:
            raw = codecs.raw.decode(value)
            request = raw.request
            new = _bumped(request, generation)
            out = codecs.raw.encode(raw.model_copy(update={"request": new}))
        else:
            validated = codecs.validated.decode(value)
            request = validated.raw.request
            new = _bumped(request, generation)
            raw = validated.raw.model_copy(update={"request": new})
            out = codecs.validated.encode(validated.model_copy(update={"raw": raw}))
        return Rewritten(out, request.request_id, request.attempt, new.attempt, request)


def _bumped(request: GenerationRequest, generation: int | None) -> GenerationRequest:
    try:
        attempt = replay_attempt(request.attempt, generation)
    except ValueError as exc:
        raise RecordValidationError(str(exc)) from exc
    # A replay is a new run: its deadline (created_at + latency budget) starts now, or every
    # replay of last week's requests would fail deadline_exceeded unsent. Re-generations of
    # the replay keep this created_at, so they share the replay's deadline.
    now = datetime.now(UTC)
    now = now.replace(microsecond=now.microsecond // 1000 * 1000)  # timestamp-millis
    return request.model_copy(
        update={"attempt": attempt, "created_at": max(now, request.created_at)}
    )


def replay_headers(
    original: Iterable[tuple[str, bytes]] | None,
    *,
    source_topic: str,
    partition: int,
    offset: int,
    replay_id: str,
    generation: int,
    origin: str | None = None,
    now: datetime | None = None,
) -> list[tuple[str, bytes]]:
    """Original headers minus dead-letter and earlier replay headers, then this replay's.

    ``source`` is ``topic/partition/offset`` of the record replayed, so a replayed event can
    always be traced to the exact record it copies; a re-driven dead letter also names the
    ``origin`` the dead-letter headers gave, since those headers are stripped.
    """
    kept = [
        (k, v)
        for k, v in without_marks(original)  # the value changed: old marks no longer hold
        if not k.startswith(HEADER_PREFIX) and not k.startswith(DLQ_PREFIX)
    ]
    when = (now or datetime.now(UTC)).isoformat(timespec="milliseconds")
    ours = {
        "source": f"{source_topic}/{partition}/{offset}",
        "id": replay_id,
        "generation": str(generation),
        "time": when,
    }
    if origin is not None:
        ours["origin"] = origin
    return kept + [(HEADER_PREFIX + k, v.encode("utf-8")) for k, v in ours.items()]


def resubmission_marks(
    marker: RequestMarker | None,
    kind: RecordKind,
    out: Rewritten,
    source_value: bytes,
    source_headers: Iterable[tuple[str, bytes]] | None,
) -> list[tuple[str, bytes]] | None:
    """The origin mark a replayed request needs, ``[]`` for other kinds, None to refuse it.

    Only a request the line would have admitted is marked, so a replay cannot turn a forged
    attempt or an unsigned request into one generate accepts. Without a ``marker`` nothing is
    marked (generate then refuses replayed requests: attempt > 1 with no mark).
    """
    if kind is not RecordKind.REQUEST or marker is None:
        return []
    assert out.source is not None, "a rewritten request keeps its source"
    if marker.authenticity(out.source, source_value, source_headers) is not None:
        return None
    return [marker.mark(out.value)]
