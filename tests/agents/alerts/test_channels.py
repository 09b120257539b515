"""The channels file: shapes checked, secrets by name and never shown."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from agents.alerts.channels import (
    ChannelsFileError,
    load_channels,
    parse_channels,
    resolve_channels,
)
from agents.alerts.grouping import Severity

EXAMPLE = """
interval_s: 300
quiet_s: 900
channels:
  - name: oncall
    type: pagerduty
    url: https://events.pagerduty.com/v2/enqueue
    routing_key: pagerduty-assetline
    min_severity: error
  - name: team
    type: slack
    url_secret: slack-webhook-url
    min_severity: warning
  - name: ops
    type: webhook
    url: https://ops.example.com/hooks/assetline
    secret: ops-hook
    min_severity: info
"""

KEYS = {
    "pagerduty-assetline": SecretStr("pd-key-123"),
    "slack-webhook-url": SecretStr("https://hooks.slack.com/services/T0/B0/XyZsecret"),
    "ops-hook": SecretStr("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
}


def test_example_loads_and_resolves(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(EXAMPLE)
    config = load_channels(path)
    channels = resolve_channels(config, KEYS)
    assert [(c.name, c.min_severity) for c in channels] == [
        ("oncall", Severity.ERROR),
        ("team", Severity.WARNING),
        ("ops", Severity.INFO),
    ]
    assert channels[0].routing_key == "pd-key-123"
    assert channels[1].url.startswith("https://hooks.slack.com/")
    assert "Xyz" not in repr(channels)
    assert "pd-key" not in repr(channels)


def test_shipped_example_loads() -> None:
    example = Path(__file__).parents[3] / "examples" / "alerts" / "channels.yaml"
    keys = {
        "pagerduty-assetline": SecretStr("pd"),
        "slack-alerts-webhook": SecretStr("https://hooks.slack.com/services/T0/B0/x"),
        "ops-alerts": SecretStr("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
    }
    channels = resolve_channels(load_channels(example), keys)
    assert [c.spec.type.value for c in channels] == ["pagerduty", "slack", "webhook"]


def test_missing_secret_names_the_name_not_a_value() -> None:
    config = parse_channels(EXAMPLE, ".yaml", "alerts.yaml")
    keys = dict(KEYS)
    del keys["ops-hook"]
    with pytest.raises(ChannelsFileError, match="ops-hook") as caught:
        resolve_channels(config, keys)
    assert "pd-key" not in str(caught.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("channels: [{name: a, type: pagerduty, url: 'https://x'}]", "routing_key"),
        ("channels: [{name: a, type: webhook, url: 'https://x'}]", "secret"),
        ("channels: [{name: a, type: slack}]", "url"),
        ("channels: [{name: a, type: slack, url: 'file:///etc/passwd'}]", "http"),
        ("channels: [{name: a, type: sms, url: 'https://x'}]", "type"),
        ("channels: [{name: a, type: slack, url: 'https://x', min_severity: loud}]", "severity"),
        ("channels: []", "channels"),
        ("a: &x 1\nb: *x\nchannels: []", "anchor"),
    ],
)
def test_bad_files_are_one_line_errors(text: str, message: str) -> None:
    with pytest.raises(ChannelsFileError, match=message) as caught:
        parse_channels(text, ".yaml", "alerts.yaml")
    assert "\n" not in str(caught.value)
