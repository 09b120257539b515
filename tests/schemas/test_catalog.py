"""schemas.catalog: drift of the committed files, compatibility with a release, snapshots."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import schemas
from schemas import catalog
from schemas.avro_schema import avro_schema_json
from schemas.records import TOP_LEVEL

SCHEMA_DIR = Path(schemas.__file__).parent
AVSC_FILES = sorted(SCHEMA_DIR.glob("*.avsc"))
MODELS = {model.__name__: model for model in TOP_LEVEL}


@pytest.fixture
def schema_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the committed schemas that the catalog reads instead of the real folder."""
    folder = tmp_path / "schemas"
    folder.mkdir()
    for path in AVSC_FILES:
        shutil.copy2(path, folder / path.name)
    monkeypatch.setattr(catalog, "schema_dir", lambda: folder)
    return folder


# --- drift ---------------------------------------------------------------------------------------


def test_committed_tree_has_no_drift() -> None:
    assert catalog.drifted() == {}


def test_copy_of_the_tree_has_no_drift(schema_copy: Path) -> None:
    assert catalog.drifted() == {}


def test_a_changed_doc_is_drift(schema_copy: Path) -> None:
    path = schema_copy / "raw_asset.avsc"
    path.write_text(
        path.read_text(encoding="utf-8").replace("Set when generation failed.", "Set on failure."),
        encoding="utf-8",
    )
    drift = catalog.drifted()
    assert list(drift) == ["raw_asset.avsc"]
    assert drift["raw_asset.avsc"] == avro_schema_json(MODELS["RawAsset"])
    assert (SCHEMA_DIR / "raw_asset.avsc").read_text(encoding="utf-8") == drift["raw_asset.avsc"]


def test_a_removed_field_and_a_missing_file_are_drift(schema_copy: Path) -> None:
    path = schema_copy / "asset_completed.avsc"
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema["fields"] = [f for f in schema["fields"] if f["name"] != "reasons"]
    path.write_text(json.dumps(schema, indent=2) + "\n", encoding="utf-8")
    (schema_copy / "generation_request.avsc").unlink()
    assert set(catalog.drifted()) == {"asset_completed.avsc", "generation_request.avsc"}


def test_whitespace_only_change_is_drift_too(schema_copy: Path) -> None:
    """The file must be byte-identical, so diffs of the public API stay reviewable."""
    path = schema_copy / "validated_asset.avsc"
    path.write_text(path.read_text(encoding="utf-8").rstrip("\n"), encoding="utf-8")
    assert list(catalog.drifted()) == ["validated_asset.avsc"]


def test_export_rewrites_only_the_drifted_files(schema_copy: Path) -> None:
    (schema_copy / "raw_asset.avsc").write_text("{}", encoding="utf-8")
    assert catalog.export() == ["raw_asset.avsc"]
    assert catalog.drifted() == {}
    assert catalog.export() == []


# --- releases ------------------------------------------------------------------------------------


def test_latest_release_compares_versions_numerically(tmp_path: Path) -> None:
    for name in ("0.9.0", "0.10.0", "0.2.1", "notes"):
        (tmp_path / name).mkdir()
    latest = catalog.latest_release(tmp_path)
    assert latest is not None
    assert latest.name == "0.10.0"
    assert catalog.latest_release(tmp_path / "notes") is None


def test_today_is_compatible_with_a_copy_of_itself(schema_copy: Path, tmp_path: Path) -> None:
    released = tmp_path / "9.9.9"
    shutil.copytree(schema_copy, released)
    assert catalog.incompatible(released) == {}


def test_a_narrowed_type_and_a_removed_contract_are_incompatible(
    schema_copy: Path, tmp_path: Path
) -> None:
    released = tmp_path / "9.9.9"
    shutil.copytree(schema_copy, released)
    path = released / "generation_request.avsc"
    doc = json.loads(path.read_text(encoding="utf-8"))
    next(f for f in doc["fields"] if f["name"] == "attempt")["type"] = "long"
    path.write_text(json.dumps(doc, indent=2), encoding="utf-8")
    (schema_copy / "alert.avsc").unlink()

    broken = catalog.incompatible(released)
    assert set(broken) == {"alert.avsc", "generation_request.avsc"}
    assert [str(p) for p in broken["generation_request.avsc"]] == [
        "attempt: type changed from long to int"
    ]
    assert "contract removed" in str(broken["alert.avsc"][0])
    diff = catalog.release_diff(released, "generation_request.avsc")
    assert diff.startswith("--- released/9.9.9/generation_request.avsc\n+++ schemas/")
    assert '-      "type": "long"\n+      "type": "int"' in diff


def test_release_snapshots_the_contracts_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog, "releases_dir", lambda: tmp_path)
    target = catalog.release("1.2.3")
    assert target == tmp_path / "1.2.3"
    assert sorted(p.name for p in target.glob("*.avsc")) == sorted(p.name for p in AVSC_FILES)
    with pytest.raises(catalog.ReleaseError, match="released contracts are frozen"):
        catalog.release("1.2.3")
    with pytest.raises(catalog.ReleaseError, match=r"must look like 1\.2\.3, not 'next'"):
        catalog.release("next")


def test_no_release_from_drifted_files(
    schema_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog, "releases_dir", lambda: tmp_path / "releases")
    (schema_copy / "raw_asset.avsc").write_text("{}", encoding="utf-8")
    with pytest.raises(catalog.ReleaseError, match="schemas out of date"):
        catalog.release("1.0.0")
    assert not (tmp_path / "releases").exists()
