"""``assetline schemas export|check``: keep ``schemas/*.avsc`` generated from the models."""

from __future__ import annotations

from pathlib import Path

import click

import schemas
from streams.avro_schema import avro_schema_json
from streams.records import TOP_LEVEL


def _schema_dir() -> Path:
    return Path(schemas.__file__).parent


def drifted() -> dict[str, str]:
    """File name -> expected text, for every committed schema that differs from its model."""
    out: dict[str, str] = {}
    for model in TOP_LEVEL:
        path = _schema_dir() / schemas.FILES[model.__name__]
        expected = avro_schema_json(model)
        if not path.exists() or path.read_text(encoding="utf-8") != expected:
            out[path.name] = expected
    return out


@click.group("schemas")
def schemas_group() -> None:
    """The Avro contracts generated from streams/records.py."""


@schemas_group.command()
def export() -> None:
    """Rewrite schemas/*.avsc from the models."""
    for name, text in drifted().items():
        (_schema_dir() / name).write_text(text, encoding="utf-8")
        click.echo(f"wrote schemas/{name}")


@schemas_group.command()
def check() -> None:
    """Fail if a committed schema differs from its model."""
    stale = drifted()
    if stale:
        raise click.ClickException(
            f"schemas out of date: {', '.join(sorted(stale))}; run 'assetline schemas export'"
        )
    click.echo("schemas match the models")
