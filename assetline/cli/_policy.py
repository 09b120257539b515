"""``assetline policy check``: which past assets would today's brand policy reject? (dry run)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal, cast

import click

from assetline.cli._common import load_settings, run
from assetline.policy_check.report import DryRunReport, render_report, report_json
from assetline.policy_check.run import PolicyCheckError, dry_run, load_dry_run_policies
from assetline.replay.ranges import RangeError, parse_bound
from streams.blobs import open_blob_store
from streams.registry import codecs_for_settings
from streams.settings import Settings


@click.group("policy")
def policy_group() -> None:
    """Brand policies (profile files) against the line's past assets."""


@policy_group.command("check")
@click.option(
    "--profile",
    "profile",
    required=True,
    type=click.Path(exists=True, path_type=Path),
    help="The new profile file (or a folder of them).",
)
@click.option("--topic", type=click.Choice(["completed", "raw"]), default="completed")
@click.option("--from", "from_", required=True, help="First offset, or ISO time (inclusive).")
@click.option("--to", default=None, help="End offset, or ISO time (exclusive); default: end now.")
@click.option("--partition", type=click.IntRange(0), default=None, help="Only this partition.")
@click.option(
    "--every-asset",
    is_flag=True,
    help="Apply the profile to every asset, not only to requests that named its id.",
)
@click.option(
    "--workers",
    type=click.IntRange(0),
    default=None,
    help="Check processes (0: none; default: CPUs - 1, 2 on 2 CPUs); with fewer than the CPUs, "
    "this one checks too.",
)
@click.option(
    "--json",
    "--out",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Also write the report as JSON here.",
)
def check_command(
    profile: Path,
    topic: str,
    from_: str,
    to: str | None,
    partition: int | None,
    every_asset: bool,
    workers: int | None,
    json_path: Path | None,
) -> None:
    """Re-run today's validation suite on past assets of TOPIC, reading their bytes from the
    blob store; deliver, re-generate, pay and produce nothing. Prints, per check, how many
    assets would now fail and their request ids.

    ``completed`` checks the delivered assets (each joined to its ``.approved`` record for
    the request and the bytes validation judged); ``raw`` every generated asset.
    """
    settings = load_settings()
    try:
        start, stop = parse_bound(from_), (parse_bound(to) if to is not None else None)
        policies = load_dry_run_policies(profile, every_asset=every_asset)
    except RangeError as exc:
        raise click.BadParameter(str(exc), param_hint="--from/--to") from None
    except PolicyCheckError as exc:
        raise click.ClickException(str(exc)) from None
    chosen = cast(Literal["raw", "completed"], topic)

    async def go(settings: Settings) -> DryRunReport:
        store = open_blob_store(settings)
        try:
            return await dry_run(
                settings,
                codecs_for_settings(settings),
                store,
                policies,
                chosen,
                start,
                stop,
                partition=partition,
                workers=workers,
            )
        finally:
            await store.aclose()

    try:
        report = run(go(settings), settings)
    except PolicyCheckError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(render_report(report))
    if json_path is not None:
        json_path.write_text(json.dumps(report_json(report), indent=2) + "\n", encoding="utf-8")
        click.echo(f"report written to {json_path}", err=True)
