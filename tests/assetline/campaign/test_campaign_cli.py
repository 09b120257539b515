"""``assetline campaign`` on bad input: one line on stderr, a non-zero exit, no traceback.

Every case points at a port where no broker listens: input is checked before Kafka is asked.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from assetline.campaign import Campaign
from assetline.cli import cli
from assetline.dev.broker import free_port
from schemas.records import GenerationRequest, Priority
from streams.codecs import Codecs

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
    assert "not a deadline: 'soon'" in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("deadline", "message"),
    [
        ("90", "not a deadline: '90' (a whole number with a unit"),
        ("1h 30m", "not a deadline: '1h 30m'"),
        ("-5m", "not a deadline: '-5m'"),
        ("0s", "deadline '0s' is out of range: more than 0 and at most 2147483647 ms"),
        ("600h", "deadline '600h' is out of range"),
    ],
)
def test_deadlines_are_parsed_strictly(
    tmp_path: Path, no_broker: str, deadline: str, message: str
) -> None:
    args = _files(tmp_path, TEMPLATE, "persona,locale\na,en\n")
    result = CliRunner().invoke(cli, [*args, "--deadline", deadline])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.output
    assert errors[0].startswith("Error: Invalid value for '--deadline': ")
    assert message in errors[0]


def _submitted(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, flags: list[str]
) -> tuple[list[GenerationRequest], float | None]:
    """Run the command with ``flags``; the requests as encoded for the topic, and the time
    (s from the start) it would wait for completions until."""
    import assetline.cli._campaign as command

    seen: dict[str, object] = {}

    async def submit_and_track(
        settings: object, plan: Campaign, rate: object, deadline: float | None, started: float,
        skip_completed: bool = False,
    ) -> tuple[None, int, float]:  # fmt: skip
        codecs = Codecs.load()
        seen["sent"] = [codecs.request.decode(codecs.request.encode(r)) for r in plan.requests]
        seen["wait"] = None if deadline is None else deadline - started
        return None, len(plan.requests), 0.0

    monkeypatch.setattr(command, "_campaign", submit_and_track)
    segments = "persona,locale,@priority\na,en,\nb,en,\nhero,en,high\n"
    result = CliRunner().invoke(cli, [*_files(tmp_path, TEMPLATE, segments), *flags])
    assert result.exit_code == 0, result.output
    sent = seen["sent"]
    wait = seen["wait"]
    assert isinstance(sent, list)
    assert wait is None or isinstance(wait, float)
    return sent, wait


def test_every_request_carries_the_campaign_priority_and_deadline(
    tmp_path: Path, no_broker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    flags = ["--priority", "low", "--deadline", "24h"]
    sent, wait = _submitted(monkeypatch, tmp_path, flags)
    assert [r.priority for r in sent] == [Priority.LOW, Priority.LOW, Priority.HIGH]
    assert {r.latency_budget_ms for r in sent} == {24 * 3600 * 1000}
    assert wait == pytest.approx(24 * 3600.0)  # the command waits as long as the requests may


def test_without_flags_requests_keep_their_own_and_the_command_waits_30m(
    tmp_path: Path, no_broker: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent, wait = _submitted(monkeypatch, tmp_path, [])
    assert [r.priority for r in sent] == [Priority.NORMAL, Priority.NORMAL, Priority.HIGH]
    assert {r.latency_budget_ms for r in sent} == {None}
    assert wait == pytest.approx(1800.0)
    no_wait, _ = _submitted(monkeypatch, tmp_path, ["--deadline", "90s", "--no-wait"])
    assert {r.latency_budget_ms for r in no_wait} == {90_000}  # not waiting: still the deadline


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
