"""``assetline schemas export|check|release``: the Avro contracts, generated and governed.

``check`` fails when a committed ``.avsc`` drifted from its model, or when a contract is not
BACKWARD compatible with the previous release in ``schemas/releases/<version>/`` (today's
readers must read what released producers wrote). ``release`` snapshots the contracts.
"""

from __future__ import annotations

import difflib
import json
import shutil
from pathlib import Path
from typing import Any

import click

import schemas
from schemas.avro_schema import avro_schema_json
from schemas.compatibility import Problem, backward_problems, pretty
from schemas.records import TOP_LEVEL


def _schema_dir() -> Path:
    return Path(schemas.__file__).parent


def _releases_dir() -> Path:
    return _schema_dir() / "releases"


def _version_key(name: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in name.split("."))
    except ValueError:
        return ()


def latest_release(releases: Path) -> Path | None:
    """The highest ``<major>.<minor>.<patch>`` folder, or None before the first release."""
    if not releases.is_dir():
        return None
    versions = [p for p in releases.iterdir() if p.is_dir() and _version_key(p.name)]
    return max(versions, key=lambda p: _version_key(p.name), default=None)


def drifted() -> dict[str, str]:
    """File name -> expected text, for every committed schema that differs from its model."""
    out: dict[str, str] = {}
    for model in TOP_LEVEL:
        path = _schema_dir() / schemas.FILES[model.__name__]
        expected = avro_schema_json(model)
        if not path.exists() or path.read_text(encoding="utf-8") != expected:
            out[path.name] = expected
    return out


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def incompatible(released: Path, current: Path) -> dict[str, list[Problem]]:
    """File name -> problems, for every released contract today's file cannot read."""
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


def _diff(old: Path, new: Path) -> str:
    before = pretty(_load(old)).splitlines(keepends=True)
    after = pretty(_load(new)).splitlines(keepends=True) if new.exists() else []
    lines = difflib.unified_diff(
        before, after, f"released/{old.parent.name}/{old.name}", f"schemas/{old.name}", n=2
    )
    return "".join(lines)


@click.group("schemas")
def schemas_group() -> None:
    """The Avro contracts generated from schemas/records.py."""


@schemas_group.command()
def export() -> None:
    """Rewrite schemas/*.avsc from the models."""
    for name, text in drifted().items():
        (_schema_dir() / name).write_text(text, encoding="utf-8")
        click.echo(f"wrote schemas/{name}")


@schemas_group.command()
@click.option(
    "--against",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="A folder of released .avsc files (default: the latest schemas/releases/<version>).",
)
def check(against: Path | None) -> None:
    """Fail if a schema drifted from its model or breaks BACKWARD compatibility."""
    stale = drifted()
    if stale:
        raise click.ClickException(
            f"schemas out of date: {', '.join(sorted(stale))}; run 'assetline schemas export'"
        )
    click.echo("schemas match the models")
    released = against or latest_release(_releases_dir())
    if released is None:
        click.echo("no released schemas yet: nothing to be compatible with")
        return
    broken = incompatible(released, _schema_dir())
    if broken:
        for name, problems in broken.items():
            click.echo(f"{name} is not BACKWARD compatible with {released.name}:", err=True)
            for problem in problems:
                click.echo(f"  - {problem}", err=True)
            click.echo(_diff(released / name, _schema_dir() / name), err=True)
        raise click.ClickException(
            f"{len(broken)} contract(s) break readers of release {released.name}: "
            "add defaults, keep removed enum symbols (or give the enum a default), or alias renames"
        )
    click.echo(f"schemas are BACKWARD compatible with release {released.name}")


@schemas_group.command()
@click.argument("version")
def release(version: str) -> None:
    """Snapshot today's contracts as schemas/releases/VERSION (the baseline for 'check')."""
    if not _version_key(version):
        raise click.ClickException(f"version must look like 1.2.3, not {version!r}")
    target = _releases_dir() / version
    if target.exists():
        raise click.ClickException(f"release {version} exists; released contracts are frozen")
    if drifted():
        raise click.ClickException("schemas out of date; run 'assetline schemas export' first")
    target.mkdir(parents=True)
    for path in sorted(_schema_dir().glob("*.avsc")):
        shutil.copy2(path, target / path.name)
    click.echo(f"released {len(list(target.glob('*.avsc')))} contracts as {version}")
