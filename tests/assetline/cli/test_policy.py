"""``assetline policy check`` refuses bad input in one line, before touching Kafka."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from assetline.cli import cli
from assetline.dev.broker import free_ports


def _run(tmp_path: Path, profile: dict[str, object], *args: str) -> tuple[int, str]:
    path = tmp_path / "acme.json"
    path.write_text(json.dumps(profile))
    (port,) = free_ports(1)  # nothing listens there: these must fail before connecting
    env = {"KAFKA_BOOTSTRAP": f"127.0.0.1:{port}", "ASSETLINE_BLOB_DIR": str(tmp_path / "b")}
    result = CliRunner().invoke(cli, ["policy", "check", "--profile", str(path), *args], env=env)
    assert "Traceback" not in result.output
    return result.exit_code, result.output


def test_a_bad_bound_names_the_option(tmp_path: Path) -> None:
    code, output = _run(tmp_path, {"id": "acme"}, "--from", "yesterday")
    assert code == 2
    assert "--from/--to" in output
    assert "not an offset or an ISO time" in output


def test_a_bad_profile_is_one_line_naming_the_file(tmp_path: Path) -> None:
    code, output = _run(tmp_path, {"id": "acme", "text": {"nope": 1}}, "--from", "0")
    assert code == 1
    assert "acme.json" in output
    assert "nope" in output


def test_an_unknown_topic_choice_is_refused(tmp_path: Path) -> None:
    code, output = _run(tmp_path, {"id": "acme"}, "--from", "0", "--topic", "requests")
    assert code == 2
    assert "'requests' is not one of 'completed', 'raw'" in output
