"""agents.inference.worker's pure parts: the group size and the breaker alerts it follows."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

from agents.inference.worker import BreakerChange, breaker_change_of, group_size
from schemas.records import Alert, AlertKind
from streams.codecs import Codecs


def _record(alert: Alert | None, raw: bytes = b"") -> SimpleNamespace:
    codec = Codecs.load().alert
    return SimpleNamespace(value=codec.encode(alert) if alert else raw, headers=None)


def test_only_breaker_alerts_with_a_provider_are_breaker_changes() -> None:
    codec = Codecs.load().alert
    at = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)
    opened = Alert(
        alert_id="a1", kind=AlertKind.BREAKER_OPENED, message="m", provider="openai", at=at
    )
    other = Alert(alert_id="a2", kind=AlertKind.COST_BUDGET_EXCEEDED, message="m", provider="x")
    nameless = Alert(alert_id="a3", kind=AlertKind.BREAKER_OPENED, message="m")
    assert breaker_change_of(codec, _record(opened)) == BreakerChange(
        "openai", True, at.timestamp()
    )
    assert breaker_change_of(codec, _record(other)) is None
    assert breaker_change_of(codec, _record(nameless)) is None
    assert breaker_change_of(codec, _record(None, b"junk")) is None


def test_a_breaker_alert_with_state_closed_is_a_closing() -> None:
    codec = Codecs.load().alert
    at = datetime(2026, 12, 3, 18, 0, tzinfo=UTC)

    def alert(**details: str) -> Alert:
        return Alert(
            alert_id="a", kind=AlertKind.BREAKER_OPENED, message="m", provider="p",
            details=details, at=at,
        )  # fmt: skip

    closing = breaker_change_of(codec, _record(alert(state="closed")))
    assert closing == BreakerChange("p", False, at.timestamp())
    assert breaker_change_of(codec, _record(alert(state="open"))) == BreakerChange(
        "p", True, at.timestamp()
    )
    assert breaker_change_of(codec, _record(alert(state="half_open"))) is None  # not shared
    assert breaker_change_of(codec, _record(alert(state="sideways"))) is None


def test_group_size_counts_members_and_is_at_least_one() -> None:
    assert group_size({}) == 1
    assert group_size({"http://a:6066": {}, "http://b:6066": {"t": [0]}}) == 2
