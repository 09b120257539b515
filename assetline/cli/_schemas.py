"""``assetline schemas export|check|release``: the Avro contracts, generated and governed.

``check`` fails when a committed ``.avsc`` drifted from its model, or when a contract is not
BACKWARD compatible with the previous release in ``schemas/releases/<version>/`` (today's
readers must read what released producers wrote). ``release`` snapshots the contracts. The
rules live in :mod:`schemas.catalog`; this module calls it and prints.
"""

from __future__ import annotations

from pathlib import Path

import click

from schemas import catalog


@click.group("schemas")
def schemas_group() -> None:
    """The Avro contracts generated from schemas/records.py."""


@schemas_group.command()
def export() -> None:
    """Rewrite schemas/*.avsc from the models."""
    for name in catalog.export():
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
    stale = catalog.drifted()
    if stale:
        raise click.ClickException(
            f"schemas out of date: {', '.join(sorted(stale))}; run 'assetline schemas export'"
        )
    click.echo("schemas match the models")
    released = against or catalog.latest_release()
    if released is None:
        click.echo("no released schemas yet: nothing to be compatible with")
        return
    broken = catalog.incompatible(released)
    if broken:
        for name, problems in broken.items():
            click.echo(f"{name} is not BACKWARD compatible with {released.name}:", err=True)
            for problem in problems:
                click.echo(f"  - {problem}", err=True)
            click.echo(catalog.release_diff(released, name), err=True)
        raise click.ClickException(
            f"{len(broken)} contract(s) break readers of release {released.name}: "
            "add defaults, keep removed enum symbols (or give the enum a default), or alias renames"
        )
    click.echo(f"schemas are BACKWARD compatible with release {released.name}")


@schemas_group.command()
@click.argument("version")
def release(version: str) -> None:
    """Snapshot today's contracts as schemas/releases/VERSION (the baseline for 'check')."""
    try:
        target = catalog.release(version)
    except catalog.ReleaseError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"released {len(list(target.glob('*.avsc')))} contracts as {version}")
