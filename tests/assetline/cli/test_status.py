"""``assetline status``: arguments (no broker needed); the run on a real line is
tests/integration/test_timeline.py."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from assetline.cli import cli


@pytest.mark.parametrize("args", [["status"], ["status", "r1", "--campaign", "c1"]])
def test_a_request_or_a_campaign_exactly(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2
    assert "give a REQUEST_ID or --campaign CAMPAIGN_ID" in result.output


def test_it_is_listed() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert "status" in result.output
