"""Grouping: one message per cause per interval with a count; resolves on closing or quiet."""

from __future__ import annotations

import pytest

from agents.alerts.grouping import Action, Cause, Grouper, Severity, cause_of
from schemas.records import Alert, AlertKind


def _alert(kind: AlertKind, n: int = 0, **fields: object) -> Alert:
    return Alert(alert_id=f"a-{kind}-{n}", kind=kind, message=f"{kind} #{n}", **fields)  # type: ignore[arg-type]


def _failed(n: int, alias: str = "copy") -> Alert:
    return _alert(AlertKind.ALL_PROVIDERS_FAILED, n, alias=alias, provider="primary")


def test_thousand_failures_are_one_message_per_interval_with_the_count() -> None:
    grouper = Grouper(interval_s=60, quiet_s=600)
    notices = []
    for i in range(1000):  # 1,000 requests over 150 s
        notices += grouper.add(_failed(i), now=i * 0.15)
    notices += grouper.tick(now=200)
    assert [n.action for n in notices] == [Action.TRIGGER] * len(notices)
    assert next(n.count for n in notices) == 1
    assert sum(n.count for n in notices) == 1000
    assert len(notices) == 4  # at 0 s, then one count per elapsed 60 s (60, 120, 200)
    assert {n.cause for n in notices} == {Cause("ALL_PROVIDERS_FAILED", "copy")}
    assert all(n.severity is Severity.ERROR for n in notices)


def test_causes_are_kind_and_subject() -> None:
    grouper = Grouper(interval_s=60)
    out = grouper.add(_failed(1, "copy"), 0) + grouper.add(_failed(2, "hero"), 0)
    out += grouper.add(_alert(AlertKind.BREAKER_OPENED, provider="primary"), 0)
    out += grouper.add(_alert(AlertKind.COST_BUDGET_EXCEEDED, details={"scope": "acme"}), 0)
    assert sorted(n.cause.dedup_key for n in out) == [
        "assetline/ALL_PROVIDERS_FAILED/copy",
        "assetline/ALL_PROVIDERS_FAILED/hero",
        "assetline/BREAKER_OPENED/primary",
        "assetline/COST_BUDGET_EXCEEDED/acme",
    ]


def test_breaker_closing_resolves_its_cause_once() -> None:
    grouper = Grouper(interval_s=60)
    opened = _alert(AlertKind.BREAKER_OPENED, provider="primary")
    closed = _alert(AlertKind.BREAKER_OPENED, 1, provider="primary", details={"state": "closed"})
    assert cause_of(closed) == (Cause("BREAKER_OPENED", "primary"), True)
    (first,) = grouper.add(opened, 0)
    assert grouper.add(opened, 5) == []  # a second worker's opening: counted, not sent
    (resolve,) = grouper.add(closed, 10)
    assert (resolve.action, resolve.count, resolve.cause) == (Action.RESOLVE, 1, first.cause)
    assert resolve.severity is Severity.CRITICAL
    assert grouper.add(closed, 11) == []  # the other worker's closing
    assert grouper.open_causes == []
    # a breaker never resolves by quiet alone: only a closing says the provider is back
    grouper.add(opened, 20)
    assert grouper.tick(10_000) == []


def test_budget_recovers_after_quiet() -> None:
    grouper = Grouper(interval_s=60, quiet_s=300)
    budget = _alert(AlertKind.COST_BUDGET_EXCEEDED, details={"scope": "campaign:spring"})
    grouper.add(budget, 0)
    grouper.add(budget, 30)
    assert grouper.tick(61)
    assert grouper.tick(200) == []
    (resolve,) = grouper.tick(30 + 300)
    assert resolve.action is Action.RESOLVE
    assert resolve.cause.subject == "campaign:spring"
    assert "recovered" in resolve.summary


def test_severity_rises_and_memory_is_bounded() -> None:
    grouper = Grouper(interval_s=60, max_causes=3)
    sent = [grouper.add(_failed(i, f"alias-{i}"), 0) for i in range(10)]
    assert sum(len(s) for s in sent) == 3
    assert len(grouper.open_causes) == 3
    (long,) = Grouper().add(_failed(0, "x" * 5000), 0)
    assert len(long.cause.dedup_key) <= 255  # PagerDuty's limit
    with pytest.raises(ValueError):
        Grouper(interval_s=0)
