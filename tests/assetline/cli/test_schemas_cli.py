"""``assetline schemas check|release``: governance of the contracts against the last release."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import schemas
from assetline.cli import cli
from schemas import catalog

ROOT = Path(schemas.__file__).parent


def _released_copy(tmp_path: Path, version: str) -> Path:
    folder = tmp_path / version
    folder.mkdir()
    for path in ROOT.glob("*.avsc"):
        (folder / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    return folder


def test_check_passes_against_a_release_equal_to_today(tmp_path: Path) -> None:
    released = _released_copy(tmp_path, "9.9.9")
    result = CliRunner().invoke(cli, ["schemas", "check", "--against", str(released)])
    assert result.exit_code == 0, result.output
    assert "BACKWARD compatible with release 9.9.9" in result.output


def test_check_fails_with_the_field_and_a_diff_when_today_cannot_read_a_release(
    tmp_path: Path,
) -> None:
    released = _released_copy(tmp_path, "9.9.9")
    path = released / "generation_request.avsc"
    doc = json.loads(path.read_text(encoding="utf-8"))
    attempt = next(f for f in doc["fields"] if f["name"] == "attempt")
    attempt["type"] = "long"  # released producers wrote longs; today's reader has an int
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")

    result = CliRunner().invoke(cli, ["schemas", "check", "--against", str(released)])
    assert result.exit_code != 0
    assert "generation_request.avsc is not BACKWARD compatible with 9.9.9" in result.output
    assert "attempt: type changed from long to int" in result.output
    assert '-      "type": "long"\n+      "type": "int"' in result.output  # the unified diff
    assert "1 contract(s) break readers of release 9.9.9" in result.output


def test_a_removed_contract_breaks(tmp_path: Path) -> None:
    released = _released_copy(tmp_path, "9.9.9")
    (released / "retired_thing.avsc").write_text(
        json.dumps({"type": "record", "name": "Retired", "fields": []}), encoding="utf-8"
    )
    result = CliRunner().invoke(cli, ["schemas", "check", "--against", str(released)])
    assert result.exit_code != 0
    assert "contract removed" in result.output


def test_release_snapshots_the_contracts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog, "releases_dir", lambda: tmp_path)
    first = CliRunner().invoke(cli, ["schemas", "release", "1.2.3"])
    assert first.exit_code == 0, first.output
    written = sorted(p.name for p in (tmp_path / "1.2.3").glob("*.avsc"))
    assert written == sorted(p.name for p in ROOT.glob("*.avsc"))
    again = CliRunner().invoke(cli, ["schemas", "release", "1.2.3"])
    assert again.exit_code != 0
    assert "released contracts are frozen" in again.output
    bad = CliRunner().invoke(cli, ["schemas", "release", "next"])
    assert bad.exit_code != 0
    assert "must look like 1.2.3" in bad.output


def test_export_then_check_repairs_drift(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "schemas"
    folder.mkdir()
    for path in ROOT.glob("*.avsc"):
        (folder / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    monkeypatch.setattr(catalog, "schema_dir", lambda: folder)
    (folder / "raw_asset.avsc").write_text("{}", encoding="utf-8")
    runner = CliRunner()
    failed = runner.invoke(cli, ["schemas", "check"])
    assert failed.exit_code != 0
    assert "raw_asset.avsc" in failed.output
    exported = runner.invoke(cli, ["schemas", "export"])
    assert exported.exit_code == 0
    assert exported.output == "wrote schemas/raw_asset.avsc\n"
    assert catalog.drifted() == {}
    ok = runner.invoke(cli, ["schemas", "check"])
    assert ok.exit_code == 0
    assert "schemas match the models" in ok.output
