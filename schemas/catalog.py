"""Governance of the contracts: export the ``.avsc`` files, find drift, check BACKWARD
compatibility with the last release, and snapshot a release.

The committed ``.avsc`` files are generated from :mod:`schemas.records`; a release in
``schemas/releases/<version>/`` is frozen, and today's readers must read what released
producers wrote. ``assetline schemas export|check|release`` only calls these and prints.
"""

from __future__ import annotations

import difflib
import json
import shutil
from pathlib import Path
from typing import Any

import schemas
from schemas.avro_schema import avro_schema_json
from schemas.compatibility import Problem, backward_problems, pretty
from schemas.errors import AssetlineError
from schemas.records import TOP_LEVEL


class ReleaseError(AssetlineError):
    """A release that may not be taken: a bad version, an existing one, or drifted files."""

    code = "schemas.release"


def schema_dir() -> Path:
    """The folder of the committed ``.avsc`` files (this package)."""
    return Path(schemas.__file__).parent


def releases_dir() -> Path:
    """The folder holding one sub-folder of frozen contracts per release."""
    return schema_dir() / "releases"


def version_key(name: str) -> tuple[int, ...]:
    """``"1.10.0"`` -> ``(1, 10, 0)`` so versions sort numerically; ``()`` for anything else."""
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return ()


def latest_release(releases: Path | None = None) -> Path | None:
    """The highest ``<major>.<minor>.<patch>`` folder, or None before the first release."""
    releases = releases_dir() if releases is None else releases
    if not releases.is_dir():
        return None
    versions = [p for p in releases.iterdir() if p.is_dir() and version_key(p.name)]
    return max(versions, key=lambda p: version_key(p.name), default=None)


def drifted() -> dict[str, str]:
    """File name -> expected text, for every committed schema that differs from its model."""
    out: dict[str, str] = {}
    for model in TOP_LEVEL:
        path = schema_dir() / schemas.FILES[model.__name__]
        expected = avro_schema_json(model)
        if not path.exists() or path.read_text(encoding="utf-8") != expected:
            out[path.name] = expected
    return out


def export() -> list[str]:
    """Rewrite every drifted ``.avsc`` from its model; the names of the files written."""
    written = []
    for name, text in drifted().items():
        (schema_dir() / name).write_text(text, encoding="utf-8")
        written.append(name)
    return written


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def incompatible(released: Path, current: Path | None = None) -> dict[str, list[Problem]]:
    """File name -> problems, for every released contract today's file cannot read."""
    current = schema_dir() if current is None else current
    out: dict[str, list[Problem]] = {}
    for old in sorted(released.glob("*.avsc")):
        new = current / old.name
        if not new.exists():
            out[old.name] = [Problem("", "contract removed; released producers still write it")]
            continue
        problems = backward_problems(_load(old), _load(new))
        if problems:
            out[old.name] = problems
    return out


def release_diff(released: Path, name: str) -> str:
    """A unified diff of contract ``name`` from ``released`` to today (normalised JSON)."""
    old, new = released / name, schema_dir() / name
    before = pretty(_load(old)).splitlines(keepends=True)
    after = pretty(_load(new)).splitlines(keepends=True) if new.exists() else []
    lines = difflib.unified_diff(
        before, after, f"released/{old.parent.name}/{old.name}", f"schemas/{old.name}", n=2
    )
    return "".join(lines)


def release(version: str) -> Path:
    """Snapshot today's contracts as ``releases/<version>`` (the baseline for the check).

    Refused (:class:`ReleaseError`) for a version not like 1.2.3, an existing release
    (released contracts are frozen) and drifted files.
    """
    if not version_key(version):
        raise ReleaseError(f"version must look like 1.2.3, not {version!r}")
    target = releases_dir() / version
    if target.exists():
        raise ReleaseError(f"release {version} exists; released contracts are frozen")
    if drifted():
        raise ReleaseError("schemas out of date; run 'assetline schemas export' first")
    target.mkdir(parents=True)
    for path in sorted(schema_dir().glob("*.avsc")):
        shutil.copy2(path, target / path.name)
    return target
