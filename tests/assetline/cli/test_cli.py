"""The command line: expected failures are one line on stderr and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from assetline.cli import cli
from assetline.cli._common import EXIT_TIMEOUT, EXIT_UNDELIVERED, delivery_verdict
from assetline.dev.broker import free_port
from schemas.records import (
    AssetCompleted,
    AssetKind,
    CompletionStatus,
    GenerationRequest,
    Priority,
)
from streams.codecs import Codecs
from streams.settings import STAGES

README = Path(__file__).resolve().parents[3] / "README.md"


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
        ["worker", "--stages", ",".join(STAGES)],
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


def test_version() -> None:
    result = CliRunner().invoke(cli, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("assetline, version ")


def test_worker_help_and_readme_list_every_stage() -> None:
    help_text = " ".join(CliRunner().invoke(cli, ["worker", "--help"]).output.split())
    assert ",".join(STAGES) in help_text
    worker_lines = [line for line in README.read_text().splitlines() if "assetline worker" in line]
    assert worker_lines, "the README shows how to run a worker"
    for line in worker_lines:
        if "--stages" in line:
            assert ",".join(STAGES) in line, line


def test_worker_with_some_stages_off_warns_one_line_each(no_broker: str) -> None:
    result = CliRunner().invoke(cli, ["worker", "--stages", "generate,validate,deliver"])
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert [line.split(":")[0] for line in lines] == ["warning", "warning", "Error"], lines
    assert "review is off" in lines[0]
    assert "notify is off" in lines[1]
    assert ".webhooks" in lines[1]


def test_submit_request_flags_do_not_mix_with_a_file(no_broker: str, tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("")
    result = CliRunner().invoke(cli, ["submit", "--file", str(path), "--alias", "x"])
    assert result.exit_code == 2
    assert "with --file" in result.output


@pytest.mark.parametrize("flag", [["--priority", "high"], ["--deadline", "30m"]])
def test_priority_and_deadline_do_not_mix_with_a_file(
    no_broker: str, tmp_path: Path, flag: list[str]
) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text("")
    result = CliRunner().invoke(cli, ["submit", "--file", str(path), *flag])
    assert result.exit_code == 2
    assert "with --file, set them in the file (priority, latency_budget_ms)" in result.output


class _Wire:
    """Stands in for LineClient in ``submit``: encodes what it is given, as it would send."""

    sent: list[bytes]

    def __init__(self, settings: object) -> None:
        self.codecs = Codecs.load()

    async def __aenter__(self) -> _Wire:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def submit(self, requests: list[GenerationRequest]) -> int:
        type(self).sent = [self.codecs.request.encode(r) for r in requests]
        return len(requests)


@pytest.mark.parametrize(
    ("flags", "priority", "budget"),
    [
        ([], Priority.NORMAL, None),
        (["--priority", "high", "--deadline", "90s"], Priority.HIGH, 90_000),
        (["--priority", "LOW", "--deadline", "24h"], Priority.LOW, 86_400_000),
        (["--deadline", "1h30m"], Priority.NORMAL, 5_400_000),
    ],
)
def test_submit_puts_priority_and_deadline_on_the_requests(
    no_broker: str,
    monkeypatch: pytest.MonkeyPatch,
    flags: list[str],
    priority: Priority,
    budget: int | None,
) -> None:
    import assetline.cli._line as line

    monkeypatch.setattr(line, "LineClient", _Wire)
    result = CliRunner().invoke(cli, ["submit", "--count", "2", *flags])
    assert result.exit_code == 0, result.output
    decoded = [Codecs.load().request.decode(value) for value in _Wire.sent]
    assert len(decoded) == 2
    assert {(r.priority, r.latency_budget_ms) for r in decoded} == {(priority, budget)}


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--deadline", "90"], "not a deadline: '90' (a whole number with a unit"),
        (["--deadline", "1.5h"], "not a deadline: '1.5h'"),
        (["--deadline", "0s"], "deadline '0s' is out of range"),
        (["--deadline", "25000h"], "at most 2147483647 ms"),
        (["--priority", "urgent"], "'urgent' is not one of 'low', 'normal', 'high'"),
    ],
)
def test_bad_priority_or_deadline_is_a_usage_error(
    no_broker: str, flags: list[str], message: str
) -> None:
    result = CliRunner().invoke(cli, ["submit", *flags])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1, result.output
    assert f"Invalid value for '--{flags[0][2:]}'" in errors[0]
    assert message in errors[0]


@pytest.mark.parametrize(
    ("command", "flags"),
    [
        ("submit", ("--brand-profile", "--callback-url", "--alias", "--wait")),
        ("demo", ("--bootstrap", "--port")),
    ],
)
def test_flags_exist(command: str, flags: tuple[str, ...]) -> None:
    help_text = CliRunner().invoke(cli, [command, "--help"]).output
    for flag in flags:
        assert flag in help_text


def _done(rid: str, status: str, reason: str = "") -> AssetCompleted:
    return AssetCompleted(
        request_id=rid,
        idempotency_key=rid,
        tenant="t",
        campaign_id="c",
        kind=AssetKind.TEXT,
        status=CompletionStatus(status),
        reasons=[reason] if reason else [],
    )


def test_delivery_verdict_is_none_only_when_all_were_delivered() -> None:
    ids = ["a", "b", "c"]
    assert delivery_verdict(ids, {i: _done(i, "DELIVERED") for i in ids}) is None
    code, line = delivery_verdict(ids, {"a": _done("a", "DELIVERED")}) or (0, "")
    assert code == EXIT_TIMEOUT
    assert "2 of 3 request(s) got no completion in time: b, c" in line
    unknown = "policy.unknown_profile: unknown brand profile 'demo'"
    latest = {i: _done(i, "FAILED", unknown) for i in ids} | {"c": _done("c", "FALLBACK")}
    code, line = delivery_verdict(ids, latest) or (0, "")
    assert code == EXIT_UNDELIVERED
    assert line == f"0 of 3 delivered; 2 FAILED, 1 FALLBACK; e.g. a: {unknown}"


def test_an_assetline_error_no_command_caught_is_one_line_with_its_code(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """E.g. SubmitError from ``submit`` when a send was never acknowledged: no traceback."""
    import click

    import assetline.cli as cli_module
    from assetline.client import SubmitError

    @click.command()
    def boom() -> None:
        raise SubmitError(2, 5, TimeoutError("no ack"))

    monkeypatch.setattr(cli_module, "cli", boom)
    with pytest.raises(SystemExit) as exit_info:
        cli_module.main([])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "(submit.not_acknowledged)" in err
    assert "Traceback" not in err
