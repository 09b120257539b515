"""``assetline campaign`` on bad input: one line on stderr, a non-zero exit, no traceback.

Every case points at a port where no broker listens: input is checked before Kafka is asked.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from assetline.cli import cli
from assetline.dev.broker import free_port

TEMPLATE = """\
tenant: acme
campaign_id: spring
kind: TEXT
prompt_template: "Headline for ${persona} in ${locale}"
"""


@pytest.fixture
def no_broker(monkeypatch: pytest.MonkeyPatch) -> str:
    for name in ("KAFKA_BOOTSTRAP", "ASSETLINE_KAFKA_BOOTSTRAP"):
        monkeypatch.delenv(name, raising=False)
    bootstrap = f"127.0.0.1:{free_port()}"
    monkeypatch.setenv("ASSETLINE_KAFKA_BOOTSTRAP", bootstrap)
    return bootstrap


def _files(tmp_path: Path, template: str, segments: str, name: str = "s.csv") -> list[str]:
    (tmp_path / "t.yaml").write_text(template)
    (tmp_path / name).write_text(segments)
    return ["campaign", "--template", str(tmp_path / "t.yaml"), "--segments", str(tmp_path / name)]


def _error_line(output: str) -> str:
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_unknown_placeholder_names_row_and_variable(tmp_path: Path, no_broker: str) -> None:
    args = _files(tmp_path, TEMPLATE, "persona,locale\na,en\nb\n", name="s.jsonl")
    (tmp_path / "s.jsonl").write_text('{"persona": "a", "locale": "en"}\n{"persona": "b"}\n')
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 1
    line = _error_line(result.output)
    assert f"{tmp_path / 's.jsonl'}:2: unknown placeholder ${{locale}}" in line


def test_bad_csv_names_the_line(tmp_path: Path, no_broker: str) -> None:
    result = CliRunner().invoke(cli, _files(tmp_path, TEMPLATE, "persona,locale\na,en\nb\n"))
    assert result.exit_code == 1
    assert f"{tmp_path / 's.csv'}:3: 1 field(s), the header has 2" in _error_line(result.output)


def test_bad_template_is_reported(tmp_path: Path, no_broker: str) -> None:
    result = CliRunner().invoke(
        cli, _files(tmp_path, TEMPLATE + "request_id: fixed\n", "persona,locale\na,en\n")
    )
    assert result.exit_code == 1
    assert "request_id cannot be set in a template" in _error_line(result.output)


def test_bad_deadline_is_a_usage_error(tmp_path: Path, no_broker: str) -> None:
    args = _files(tmp_path, TEMPLATE, "persona,locale\na,en\n")
    result = CliRunner().invoke(cli, [*args, "--deadline", "soon"])
    assert result.exit_code == 2
    assert "not a duration" in result.output
    assert "Traceback" not in result.output


def test_missing_file_is_a_usage_error(tmp_path: Path, no_broker: str) -> None:
    result = CliRunner().invoke(
        cli, ["campaign", "--template", str(tmp_path / "nope.yaml"), "--segments", "x.csv"]
    )
    assert result.exit_code == 2
    assert "does not exist" in result.output


def test_good_input_without_a_broker_is_a_one_line_error(tmp_path: Path, no_broker: str) -> None:
    result = CliRunner().invoke(cli, _files(tmp_path, TEMPLATE, "persona,locale\na,en\n"))
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[0] == "campaign spring: 1 row(s) -> 1 request(s)"  # expanded, then no broker
    assert no_broker in _error_line("\n".join(lines[1:]))
