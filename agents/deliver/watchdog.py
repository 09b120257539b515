"""Deadline watchdog, the pure part: when a request is due, which are open, what is safe to skip.

Every request has a deadline, so no framework bug (a lost event, a stage that never answers)
can leave it open without anyone noticing. The deliver stage's watchdog task
(:mod:`agents.deliver.watchdog_task`) follows, for each ledger partition it owns, partition *p*
of ``.requests``, ``.requests.urgent``, ``.review`` and ``.completed`` and keeps an
:class:`OpenSet` per partition; this module holds everything that does not touch Kafka.

Deadlines (:class:`DeadlinePolicy`):

* a request is due ``latency_budget_ms + deadline_slack_s`` after it started when it has a
  latency budget (the budget bounds generation only, the slack covers queueing, validation and
  delivery), else ``request_deadline_s`` after. It "started" at ``max(created_at, when its
  latest attempt was written)``: a re-generation, a replay or a re-drive of an old request gets
  its own time instead of timing out on arrival;
* a request waiting for a person (its latest attempt is on ``.review``) is due
  ``review_deadline_s`` after it entered review instead: the line default must not time out a
  request because a reviewer is slow.

A request past its deadline is completed through the deliver stage's own path: the task writes
a ``ValidatedAsset`` (verdict ERROR, disposition REJECTED, a failed ``deadline_exceeded`` check)
to ``.rejected``, and the deliver agent, which is the only writer of the ledger, completes it as
FAILED with its webhooks, or drops it when a completion got there first. The record carries the
*last attempt of the request's generation* (:func:`closing_attempt`): the deadline ends the
request, so a re-generation still under way cannot complete it a second time, while a replay
(the next generation) still can.

Memory holds only open requests: an entry is dropped when ``.completed`` shows its completion.
A restart does not re-read history: per partition the task commits :class:`Marks`, offsets of
``.requests``, ``.requests.urgent`` and ``.review`` below which every record is settled (its
request completed, or superseded by a later record, or never to be completed: not decodable,
not authentic).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from schemas.attempts import MAX_ATTEMPT, REPLAY_STRIDE, generation_of
from schemas.records import (
    Alert,
    AlertKind,
    AssetCompleted,
    CheckResult,
    Disposition,
    GenerationError,
    GenerationRequest,
    RawAsset,
    ValidatedAsset,
    ValidationReport,
    Verdict,
)
from streams.codecs import CodecError

#: The reason code of a request completed because it was open past its deadline.
REASON = "deadline_exceeded"

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True)
class DeadlinePolicy:
    """The line's deadline settings; times are POSIX seconds."""

    request_s: float
    slack_s: float
    review_s: float

    def for_request(self, request: GenerationRequest, written_ms: int | None) -> float:
        """When ``request`` (this attempt of it, written at ``written_ms``) is due."""
        start = request.created_at.timestamp()
        if written_ms is not None and written_ms > 0:
            start = max(start, written_ms / 1000.0)
        if request.latency_budget_ms is not None and request.latency_budget_ms > 0:
            return start + request.latency_budget_ms / 1000.0 + self.slack_s
        return start + self.request_s

    def for_review(self, queued_ms: int) -> float:
        """When a request that entered review at ``queued_ms`` is due."""
        return queued_ms / 1000.0 + self.review_s


def closing_attempt(attempt: int) -> int:
    """The last attempt of ``attempt``'s generation: a timeout completes the whole generation.

    The ledger drops anything at or below a completed attempt, so a re-generation that was
    still under way at the deadline cannot add a second completion; a replay (next generation)
    numbers its attempts above this and completes anew.
    """
    return min(generation_of(attempt) * REPLAY_STRIDE + REPLAY_STRIDE - 1, MAX_ATTEMPT)


def completed_attempt(value: bytes | None, decode: Callable[[bytes], AssetCompleted]) -> int | None:
    """The attempt of a ledger entry, ``None`` for none.

    An entry this worker cannot decode still proves a completion exists (as in
    :func:`agents.deliver.ledger.already_completed`), so it covers every attempt.
    """
    if value is None:
        return None
    try:
        return decode(value).attempt
    except CodecError:
        return MAX_ATTEMPT


@dataclass(slots=True)
class OpenRequest:
    """What the watchdog keeps of one open request: enough to find its record again."""

    attempt: int
    deadline: float
    #: offset of the ``.requests`` record of this attempt, None when known from review only
    request_offset: int | None
    #: offset of the ``.review`` record of this attempt, None unless it waits for a person
    review_offset: int | None = None
    #: the timeout record was written; the entry stays until its completion is seen
    timed_out: bool = False
    #: the request record is on ``.requests.urgent`` (a HIGH request), not ``.requests``
    urgent: bool = False

    @property
    def in_review(self) -> bool:
        return self.review_offset is not None


@dataclass(frozen=True)
class Marks:
    """Offsets of ``.requests``, ``.review`` and ``.requests.urgent`` (one partition) below
    which all is settled."""

    requests: int
    review: int
    urgent: int


class OpenSet:
    """The open requests of one partition, in the order their records were read.

    Insertion-ordered indexes, one per topic read, give the low-water marks in O(1): records
    of a topic's partition are read in offset order, so the first entry of each index holds the
    lowest offset still needed. An entry in review needs only its ``.review`` record (which
    holds the request), so it leaves its requests index: a long review does not hold back the
    requests mark. Attempts decide across topics: a HIGH re-generation on ``.requests.urgent``
    supersedes its first attempt on ``.requests``, whichever of the two is read first.
    """

    def __init__(self) -> None:
        self._open: dict[str, OpenRequest] = {}
        self._by_request: dict[str, int] = {}
        self._by_urgent: dict[str, int] = {}
        self._by_review: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._open)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._open

    def get(self, request_id: str) -> OpenRequest | None:
        return self._open.get(request_id)

    def on_request(
        self, request_id: str, attempt: int, deadline: float, offset: int, *, urgent: bool = False
    ) -> None:
        """A ``.requests`` record (``urgent``: a ``.requests.urgent`` one): a new request, or
        a later attempt that supersedes one."""
        current = self._open.get(request_id)
        if current is not None and current.attempt >= attempt:
            return  # a copy of a known attempt (producer retry), or an older one read late
        self.drop(request_id)
        self._open[request_id] = OpenRequest(attempt, deadline, offset, urgent=urgent)
        (self._by_urgent if urgent else self._by_request)[request_id] = offset

    def on_review(self, request_id: str, attempt: int, deadline: float, offset: int) -> None:
        """A ``.review`` record: the attempt now waits for a person, under the review deadline."""
        current = self._open.get(request_id)
        if current is not None and current.attempt > attempt:
            return
        if current is not None and current.attempt == attempt:
            if current.in_review:
                return
            current.review_offset = offset
            current.deadline = deadline
            self._by_request.pop(request_id, None)
            self._by_urgent.pop(request_id, None)
            self._by_review[request_id] = offset
            return
        self.drop(request_id)
        self._open[request_id] = OpenRequest(attempt, deadline, None, offset)
        self._by_review[request_id] = offset

    def on_completed(self, request_id: str, attempt: int) -> bool:
        """A completion: drops the entry when it covers the open attempt. True if dropped."""
        current = self._open.get(request_id)
        if current is None or attempt < current.attempt:
            return False
        self.drop(request_id)
        return True

    def drop(self, request_id: str) -> None:
        self._open.pop(request_id, None)
        self._by_request.pop(request_id, None)
        self._by_urgent.pop(request_id, None)
        self._by_review.pop(request_id, None)

    def mark_timed_out(self, request_id: str) -> None:
        current = self._open.get(request_id)
        if current is not None:
            current.timed_out = True

    def due(self, now: float, limit: int) -> list[tuple[str, OpenRequest]]:
        """Up to ``limit`` entries past their deadline and not yet timed out, oldest due first."""
        expired = [
            (rid, entry)
            for rid, entry in self._open.items()
            if entry.deadline <= now and not entry.timed_out
        ]
        expired.sort(key=lambda item: item[1].deadline)
        return expired[:limit]

    def marks(self, requests_position: int, review_position: int, urgent_position: int) -> Marks:
        """The low-water marks, given how far each reader has read (its next offset)."""
        return Marks(
            _low(self._by_request, requests_position),
            _low(self._by_review, review_position),
            _low(self._by_urgent, urgent_position),
        )


def _low(index: dict[str, int], position: int) -> int:
    """The first offset ``index`` still needs, or ``position`` when it needs none below it."""
    return min(next(iter(index.values()), position), position)


def caught_up(
    positions: Mapping[K, int], ends: Mapping[K, int], previous_ends: Mapping[K, int]
) -> bool:
    """Whether readers at ``positions`` have read what a timeout decision needs.

    A reader is far enough when it reached the end offsets of the previous check (or of this
    one, on a quiet topic): under steady traffic it is never exactly at the end, but one still
    behind the previous check's ends is catching up (a start, a restart) and may not have read
    yet that a request moved to review or got a new attempt.
    """
    return all(
        position >= min(ends[key], previous_ends.get(key, ends[key]))
        for key, position in positions.items()
    )


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _message(entry: OpenRequest) -> str:
    waiting = "waiting for a review decision" if entry.in_review else "open"
    return f"{waiting} past its deadline {_utc(entry.deadline)} (attempt {entry.attempt})"


def _deadline_check(entry: OpenRequest) -> CheckResult:
    return CheckResult(
        code=REASON, passed=False, message=_message(entry), measured=_utc(entry.deadline)
    )


def timeout_from_request(request: GenerationRequest, entry: OpenRequest) -> ValidatedAsset:
    """The record that ends an open request that is not in review (from its ``.requests`` copy)."""
    closing = request.model_copy(update={"attempt": closing_attempt(entry.attempt)})
    raw = RawAsset(
        request=closing,
        error=GenerationError(code=REASON, message=_message(entry)),
        provider="",
        model_version="",
        latency_ms=0.0,
    )
    report = ValidationReport(verdict=Verdict.ERROR, checks=[_deadline_check(entry)])
    return ValidatedAsset(raw=raw, report=report, disposition=Disposition.REJECTED)


def timeout_from_review(waiting: ValidatedAsset, entry: OpenRequest) -> ValidatedAsset:
    """The record that ends a request waiting in review: its asset and costs, a failed verdict.

    The deadline comes first among the reasons; the checks that sent it to review follow.
    """
    raw = waiting.raw
    request = raw.request.model_copy(update={"attempt": closing_attempt(entry.attempt)})
    report = waiting.report.model_copy(
        update={
            "verdict": Verdict.ERROR,
            "checks": [_deadline_check(entry), *waiting.report.checks],
        }
    )
    return waiting.model_copy(
        update={
            "raw": raw.model_copy(update={"request": request}),
            "report": report,
            "disposition": Disposition.REJECTED,
            "review": None,
        }
    )


def deadline_alert(request: GenerationRequest, entry: OpenRequest, now: float) -> Alert:
    """The operator's alert; its id is stable so a repeat after a restart is recognisable."""
    return Alert(
        alert_id=f"deadline:{request.request_id}:{entry.attempt}",
        kind=AlertKind.DEADLINE_EXCEEDED,
        message=f"request {request.request_id} {_message(entry)}; completed FAILED {REASON}",
        request_id=request.request_id,
        tenant=request.tenant,
        campaign_id=request.campaign_id,
        details={
            "attempt": str(entry.attempt),
            "deadline": _utc(entry.deadline),
            "overdue_s": f"{max(0.0, now - entry.deadline):.3f}",
            "waiting": "review" if entry.in_review else "line",
        },
    )
