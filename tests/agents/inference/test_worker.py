"""agents.inference.worker's pure parts: the group size and the breaker alerts it follows."""

from __future__ import annotations

from types import SimpleNamespace

from agents.inference.worker import group_size, opened_breaker_of
from schemas.records import Alert, AlertKind
from streams.codecs import Codecs


def _record(alert: Alert | None, raw: bytes = b"") -> SimpleNamespace:
    codec = Codecs.load().alert
    return SimpleNamespace(value=codec.encode(alert) if alert else raw, headers=None)


def test_only_breaker_opened_alerts_name_a_provider() -> None:
    codec = Codecs.load().alert
    opened = Alert(alert_id="a1", kind=AlertKind.BREAKER_OPENED, message="m", provider="openai")
    other = Alert(alert_id="a2", kind=AlertKind.COST_BUDGET_EXCEEDED, message="m", provider="x")
    nameless = Alert(alert_id="a3", kind=AlertKind.BREAKER_OPENED, message="m")
    assert opened_breaker_of(codec, _record(opened)) == "openai"
    assert opened_breaker_of(codec, _record(other)) is None
    assert opened_breaker_of(codec, _record(nameless)) is None
    assert opened_breaker_of(codec, _record(None, b"junk")) is None


def test_group_size_counts_members_and_is_at_least_one() -> None:
    assert group_size({}) == 1
    assert group_size({"http://a:6066": {}, "http://b:6066": {"t": [0]}}) == 2
