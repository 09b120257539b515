"""``assetline alerts route``: deliver ``<prefix>.alerts`` to people (Slack, PagerDuty, webhook).

The grouping and sending live in :mod:`agents.alerts`; this module parses, loads and runs.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import click

from assetline.cli._common import load_settings, run


@click.group("alerts")
def alerts_group() -> None:
    """Alerts: route them to Slack, PagerDuty or a signed webhook."""


@alerts_group.command("route")
@click.option(
    "--channels",
    "channels_file",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Channels file (YAML/TOML/JSON): channels, min severity, secret names, interval_s.",
)
def route(channels_file: Path) -> None:
    """Follow the alerts topic and send one message per cause per interval until stopped."""
    # Imported here: agents.alerts loads httpx and the egress guard, ~50 ms of every
    # 'assetline --help' otherwise.
    from agents.alerts.channels import ChannelsFileError, load_channels, resolve_channels
    from agents.alerts.router import run_alert_router

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    settings = load_settings()
    try:
        config = load_channels(channels_file)
        channels = resolve_channels(config, settings.api_keys)
    except ChannelsFileError as exc:
        raise click.ClickException(str(exc)) from None
    names = ", ".join(f"{c.name} ({c.spec.type.value}, >= {c.spec.min_severity})" for c in channels)
    click.echo(f"routing alerts to {names}", err=True)
    with contextlib.suppress(KeyboardInterrupt):
        run(run_alert_router(settings, config, channels), settings)
