"""The command line: expected failures are one line on stderr and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.broker import free_port
from streams.cli import cli


@pytest.fixture
def no_broker(monkeypatch: pytest.MonkeyPatch) -> str:
    """Point every command at a port where nothing listens."""
    for name in ("KAFKA_BOOTSTRAP", "ASSETLINE_KAFKA_BOOTSTRAP"):
        monkeypatch.delenv(name, raising=False)
    bootstrap = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("ASSETLINE_KAFKA_BOOTSTRAP", bootstrap)
    return bootstrap


def _one_line_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "Traceback" not in output
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_help_lists_the_commands() -> None:
    result = CliRunner().invoke(cli, ["--help"])
    assert result.exit_code == 0
    for command in ("broker", "worker", "submit", "tail", "demo", "schemas", "topics"):
        assert command in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["submit", "--kind", "TEXT"],
        ["tail", "completed", "--timeout", "1"],
        ["topics"],
        ["worker", "--stages", "generate"],
    ],
)
def test_missing_broker_is_a_one_line_error(no_broker: str, args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1, result.output
    line = _one_line_error(result.output)
    assert no_broker in line


def test_bad_variable_is_a_usage_error(no_broker: str) -> None:
    result = CliRunner().invoke(cli, ["submit", "--var", "no-equals-sign"])
    assert result.exit_code == 2
    assert "expected name=value" in result.output
    assert "Traceback" not in result.output


def test_unknown_stage_is_a_one_line_error(no_broker: str) -> None:
    result = CliRunner().invoke(cli, ["worker", "--stages", "generate,paint"])
    assert result.exit_code == 1
    assert "unknown stage" in _one_line_error(result.output)


def test_bad_request_file_names_the_line(no_broker: str, tmp_path: Path) -> None:
    good = {"tenant": "t", "campaign_id": "c", "kind": "TEXT", "prompt_template": "hi"}
    path = tmp_path / "requests.jsonl"
    path.write_text(json.dumps(good) + "\n" + '{"tenant": "t", "kind": "PAINTING"}\n')
    result = CliRunner().invoke(cli, ["submit", "--file", str(path)])
    assert result.exit_code == 1
    assert f"{path}:2: not a valid request" in _one_line_error(result.output)


def test_schemas_check_passes_on_the_committed_tree() -> None:
    result = CliRunner().invoke(cli, ["schemas", "check"])
    assert result.exit_code == 0, result.output
    assert "match" in result.output


def test_broker_status_without_a_broker_exits_non_zero(tmp_path: Path) -> None:
    port, controller = free_port(), free_port()
    args = ["broker", "status", "--root", str(tmp_path), "--port", str(port)]
    result = CliRunner().invoke(cli, [*args, "--controller-port", str(controller)])
    assert result.exit_code == 1
    assert "running=False" in result.output
