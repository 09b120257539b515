"""``assetline alerts route``: a bad channels file or a missing secret is one line, no secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from assetline.cli import cli

GOOD = """
channels:
  - {name: oncall, type: pagerduty, url: "https://events.pagerduty.com/v2/enqueue",
     routing_key: pd-assetline, min_severity: error}
"""


def test_missing_secret_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text(GOOD)
    monkeypatch.setenv("ASSETLINE_API_KEYS", '{"other": "s3cr3t-value"}')
    result = CliRunner().invoke(cli, ["alerts", "route", "--channels", str(path)])
    assert result.exit_code == 1
    assert "no secret 'pd-assetline' in api_keys" in result.output
    assert "s3cr3t-value" not in result.output


def test_bad_file_is_one_line(tmp_path: Path) -> None:
    path = tmp_path / "alerts.yaml"
    path.write_text("channels: [{name: a, type: sms, url: 'https://x'}]\n")
    result = CliRunner().invoke(cli, ["alerts", "route", "--channels", str(path)])
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert "alerts.yaml" in result.output
    assert result.output.count("\n") == 1
