"""Every request's events, kept in memory as they are read, bounded by a number of requests.

Appending is O(1) per entry and a look-up sorts one request's handful of entries, so the
answer does not depend on how many requests are indexed. When more than ``max_requests`` are
known, the one least recently touched is forgotten (with its campaign membership).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from assetline.timeline.entry import (
    EventKind,
    Headers,
    TimelineEntry,
    TopicKind,
    entry_from,
    request_id_of_key,
)
from streams.codecs import Codecs

#: Default bound: a request of 5 entries takes about 5 KB (bench/timeline.py), so ~500 MB.
DEFAULT_MAX_REQUESTS = 100_000


@dataclass(slots=True)
class RequestState:
    """What the index knows of one request: its entries (in arrival order) and a summary."""

    request_id: str
    entries: list[TimelineEntry] = field(default_factory=list)
    campaign_id: str | None = None
    tenant: str | None = None
    first_ms: int = 0
    last_ms: int = 0
    #: The latest completion's status (``DELIVERED``, ...), ``None`` while open.
    status: str | None = None
    completed_attempt: int = 0
    completed_ms: int | None = None
    reason_code: str | None = None
    cost: float = 0.0
    trace_id: str | None = None
    # When it last went to review, was last decided, last dead-lettered, last moved on:
    # the topics are read in parallel, so the summary is decided by time, not arrival.
    review_ms: int = 0
    decided_ms: int = 0
    dead_letter_ms: int = 0
    moved_ms: int = 0

    @property
    def in_review(self) -> bool:
        """Sent to review and neither decided nor completed since."""
        return self.review_ms > max(self.decided_ms, self.completed_ms or 0)

    @property
    def dead_lettered(self) -> bool:
        """Open, and its last event is a dead letter (nothing moved it on since)."""
        last = self.dead_letter_ms
        return self.status is None and last > 0 and last >= self.moved_ms

    def note(self, entry: TimelineEntry) -> None:
        """Fold one entry into the summary (entries may arrive out of time order)."""
        self.entries.append(entry)
        at = entry.at_ms
        self.first_ms = min(self.first_ms, at) if self.first_ms else at
        self.last_ms = max(self.last_ms, at)
        self.campaign_id = self.campaign_id or entry.campaign_id
        self.tenant = self.tenant or entry.tenant
        self.trace_id = self.trace_id or entry.trace_id
        if entry.cost is not None:
            self.cost = max(self.cost, entry.cost)
        kind = entry.kind
        if kind is EventKind.DEAD_LETTER:
            self.dead_letter_ms = max(self.dead_letter_ms, at)
        elif kind is not EventKind.ALERT:
            self.moved_ms = max(self.moved_ms, at)
        if kind is EventKind.COMPLETED:
            attempt = entry.attempt or 0
            if attempt >= self.completed_attempt:
                self.status = str(entry.details.get("status"))
                self.reason_code = entry.details.get("reason_code")
                self.completed_attempt = attempt
                self.completed_ms = at
        elif kind is EventKind.SENT_TO_REVIEW or (
            kind is EventKind.REVIEW_ITEM and entry.details.get("status") == "PENDING"
        ):
            self.review_ms = max(self.review_ms, at)
        elif kind in (EventKind.DECIDED, EventKind.REVIEWED, EventKind.REVIEW_ITEM):
            self.decided_ms = max(self.decided_ms, at)

    def timeline(self) -> list[TimelineEntry]:
        return sorted(self.entries, key=TimelineEntry.sort_key)


class RequestIndex:
    """Request id -> its events, fed record by record (:meth:`apply`), read by :meth:`timeline`.

    Not thread-safe: one event loop feeds and reads it (the follower and the console's
    handlers share the loop). ``only``: index just these request ids (the CLI's one-request
    read skips decoding every other record).
    """

    def __init__(
        self,
        codecs: Codecs,
        *,
        max_requests: int = DEFAULT_MAX_REQUESTS,
        only: Iterable[str] | None = None,
    ) -> None:
        if max_requests < 1:
            raise ValueError("max_requests must be at least 1")
        self.codecs = codecs
        self.max_requests = max_requests
        self.only = frozenset(only) if only is not None else None
        self._requests: OrderedDict[str, RequestState] = OrderedDict()
        self._campaigns: dict[str, set[str]] = {}
        self.records = 0
        self.evicted = 0

    def apply(
        self,
        topic: TopicKind,
        key: bytes | None,
        value: bytes | None,
        headers: Headers,
        timestamp: int,
    ) -> tuple[TimelineEntry, ...]:
        """Index one record; returns the entries it added (none for a tombstone, say)."""
        self.records += 1
        if self.only is not None and topic is not TopicKind.ALERTS:
            rid = request_id_of_key(topic, key)
            if rid not in self.only:
                return ()
        entries = entry_from(topic, key, value, headers, timestamp, codecs=self.codecs)
        for entry in entries:
            self.add(entry)
        return entries

    def add(self, entry: TimelineEntry) -> None:
        """Index one entry (built elsewhere, e.g. by :func:`entry_from`)."""
        rid = entry.request_id
        if self.only is not None and rid not in self.only:
            return
        state = self._requests.get(rid)
        if state is None:
            state = self._requests[rid] = RequestState(rid)
            if len(self._requests) > self.max_requests:
                self._evict()
        else:
            self._requests.move_to_end(rid)
        had_campaign = state.campaign_id
        state.note(entry)
        if state.campaign_id is not None and had_campaign is None:
            self._campaigns.setdefault(state.campaign_id, set()).add(rid)

    def _evict(self) -> None:
        rid, state = self._requests.popitem(last=False)
        self.evicted += 1
        if state.campaign_id is not None:
            members = self._campaigns.get(state.campaign_id)
            if members is not None:
                members.discard(rid)
                if not members:
                    del self._campaigns[state.campaign_id]

    def timeline(self, request_id: str) -> list[TimelineEntry]:
        """The request's entries in time order (empty when unknown or evicted)."""
        state = self._requests.get(request_id)
        return state.timeline() if state is not None else []

    def state(self, request_id: str) -> RequestState | None:
        return self._requests.get(request_id)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._requests

    def __len__(self) -> int:
        return len(self._requests)

    def request_ids(self) -> Iterator[str]:
        """Known ids, least recently touched first."""
        return iter(self._requests)

    def campaigns(self) -> list[str]:
        return sorted(self._campaigns)

    def campaign_states(self, campaign_id: str) -> list[RequestState]:
        """The indexed requests of ``campaign_id`` (evicted ones are gone)."""
        ids = self._campaigns.get(campaign_id, ())
        return [self._requests[rid] for rid in ids]
