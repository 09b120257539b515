"""``assetline models compare``: an alias's primary, canary and shadow versions side by side."""

from __future__ import annotations

import json

import click

from assetline.cli._common import load_settings, run
from assetline.models_compare import CompareError, parse_since, read_comparison, render_table
from streams.registry import codecs_for_settings


@click.group("models")
def models_group() -> None:
    """The models behind the routing file's aliases."""


@models_group.command("compare")
@click.option("--alias", "alias", required=True, help="The alias whose versions to compare.")
@click.option(
    "--since",
    default=None,
    help="Only records written since: a duration back from now (90s, 30m, 24h, 7d) or an "
    "ISO time (naive = UTC). Default: everything the topics hold.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of the table.")
def compare_command(alias: str, since: str | None, as_json: bool) -> None:
    """Per rung of ALIAS (primary, canary, shadow): requests, approval rate, re-generation
    rate, generation latency p50/p95 and cost per delivered asset (for a shadow: per approved
    copy), read from .raw, .approved, .rejected, .shadows and .completed."""
    try:
        start = parse_since(since) if since is not None else None
    except CompareError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    settings = load_settings()
    comparison = run(
        read_comparison(settings, codecs_for_settings(settings), alias, start), settings
    )
    if as_json:
        click.echo(json.dumps(comparison.as_dict(), indent=2))
    else:
        click.echo(render_table(comparison))
