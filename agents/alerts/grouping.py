"""Turn a stream of :class:`~schemas.records.Alert` events into few messages for people.

Pure logic, no I/O: the router feeds alerts and ticks a clock, and sends what comes out.
A *cause* is the alert's kind plus its subject (the provider of a breaker, the scope of a cost
budget, the alias of a latency budget...). Per cause:

* the first alert of a quiet cause is sent at once (``trigger``, count 1);
* later alerts of the same cause are only counted, and sent as one ``trigger`` with the count
  at most once per ``interval_s`` (a 1,000-request outage is a handful of messages, not 1,000);
* a breaker's closing (``BREAKER_OPENED`` with details ``state=closed``) resolves its cause at
  once; every other cause resolves by itself after ``quiet_s`` without a new alert (a budget
  that stopped refusing has recovered). A resolve carries the same ``dedup_key`` as its
  triggers, so PagerDuty closes the incident it opened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Final

from schemas.records import Alert, AlertKind

#: The detail a breaker alert carries to say it closed (agents/inference/routing/router.py).
STATE_DETAIL: Final = "state"
CLOSED: Final = "closed"


class Severity(IntEnum):
    """PagerDuty's four severities, ordered so a channel can ask for a minimum."""

    INFO = 0
    WARNING = 1
    ERROR = 2
    CRITICAL = 3

    @property
    def label(self) -> str:
        return self.name.lower()


#: How bad each kind is; an unknown kind (a newer writer) is an error, not silence.
SEVERITY_OF: Final[dict[AlertKind, Severity]] = {
    AlertKind.BREAKER_OPENED: Severity.CRITICAL,
    AlertKind.ALL_PROVIDERS_FAILED: Severity.ERROR,
    AlertKind.COST_BUDGET_EXCEEDED: Severity.ERROR,
    AlertKind.DEADLINE_EXCEEDED: Severity.ERROR,
    AlertKind.LATENCY_BUDGET_EXCEEDED: Severity.WARNING,
}


class Action(StrEnum):
    """PagerDuty's event actions: a trigger opens (or adds to) an incident, resolve closes it."""

    TRIGGER = "trigger"
    RESOLVE = "resolve"


@dataclass(frozen=True)
class Cause:
    """What the alerts are about: their kind and subject; one incident per cause."""

    kind: str
    subject: str

    @property
    def dedup_key(self) -> str:
        return f"assetline/{self.kind}/{self.subject}"


@dataclass(frozen=True)
class Notice:
    """One message to people: ``count`` alerts of ``cause`` since the previous message."""

    cause: Cause
    action: Action
    severity: Severity
    count: int
    summary: str
    first_at: float
    last_at: float
    tenant: str | None = None


def subject_of(alert: Alert) -> str:
    """Who the alert is about; the same for every alert of one outage or one budget."""
    kind = alert.kind
    if kind is AlertKind.BREAKER_OPENED:
        return alert.provider or "unknown provider"
    if kind is AlertKind.COST_BUDGET_EXCEEDED:
        return alert.details.get("scope") or alert.campaign_id or alert.tenant or "cost budget"
    if kind is AlertKind.DEADLINE_EXCEEDED:
        return alert.tenant or "any tenant"
    # ALL_PROVIDERS_FAILED, LATENCY_BUDGET_EXCEEDED: the routing alias
    return alert.alias or alert.provider or "pinned model"


#: Subjects come from records; clipped so a dedup_key stays within PagerDuty's 255 characters.
MAX_SUBJECT: Final = 200


def cause_of(alert: Alert) -> tuple[Cause, bool]:
    """The alert's cause, and whether it resolves it (a breaker's closing)."""
    closes = alert.kind is AlertKind.BREAKER_OPENED and alert.details.get(STATE_DETAIL) == CLOSED
    return Cause(str(alert.kind), subject_of(alert)[:MAX_SUBJECT]), closes


def severity_of(alert: Alert) -> Severity:
    return SEVERITY_OF.get(alert.kind, Severity.ERROR)


@dataclass
class _Open:
    """A cause with an incident open: counts since its last message."""

    severity: Severity
    last_sent: float
    last_seen: float
    pending: int = 0
    total: int = 0
    pending_since: float = 0.0
    summary: str = ""
    tenant: str | None = None


@dataclass
class Grouper:
    """Per-cause state; :meth:`add` and :meth:`tick` return the notices to send now."""

    interval_s: float = 300.0
    quiet_s: float = 900.0
    max_causes: int = 10_000
    _open: dict[Cause, _Open] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.interval_s <= 0 or self.quiet_s <= 0:
            raise ValueError("interval_s and quiet_s must be positive")

    @property
    def open_causes(self) -> list[Cause]:
        return list(self._open)

    def add(self, alert: Alert, now: float) -> list[Notice]:
        cause, closes = cause_of(alert)
        state = self._open.get(cause)
        if closes:
            if state is None:  # another worker's closing of the same breaker: already resolved
                return []
            del self._open[cause]
            return [
                Notice(
                    cause, Action.RESOLVE, state.severity, state.pending, alert.message,
                    state.pending_since or now, now, state.tenant,
                )
            ]  # fmt: skip
        severity = severity_of(alert)
        if state is None:
            if len(self._open) >= self.max_causes:  # bounded memory: hostile subjects
                return []
            self._open[cause] = _Open(severity, now, now, 0, 1, now, alert.message, alert.tenant)
            return [
                Notice(cause, Action.TRIGGER, severity, 1, alert.message, now, now, alert.tenant)
            ]
        state.severity = max(state.severity, severity)
        state.last_seen = now
        state.total += 1
        if state.pending == 0:
            state.pending_since = now
        state.pending += 1
        state.summary = alert.message
        return self._due(cause, state, now)

    def tick(self, now: float) -> list[Notice]:
        """Counts whose interval has ended, and causes quiet for ``quiet_s`` resolved."""
        out: list[Notice] = []
        for cause, state in list(self._open.items()):
            out.extend(self._due(cause, state, now))
            breaker = cause.kind == AlertKind.BREAKER_OPENED.value
            if not breaker and state.pending == 0 and now - state.last_seen >= self.quiet_s:
                del self._open[cause]
                quiet = f"recovered: no {cause.kind} for {cause.subject} in {self.quiet_s:g} s"
                out.append(
                    Notice(
                        cause, Action.RESOLVE, state.severity, 0, quiet,
                        state.last_seen, now, state.tenant,
                    )
                )  # fmt: skip
        return out

    def _due(self, cause: Cause, state: _Open, now: float) -> list[Notice]:
        if state.pending == 0 or now - state.last_sent < self.interval_s:
            return []
        notice = Notice(
            cause, Action.TRIGGER, state.severity, state.pending, state.summary,
            state.pending_since, now, state.tenant,
        )  # fmt: skip
        state.pending = 0
        state.last_sent = now
        return [notice]
