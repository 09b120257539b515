"""``assetline webhooks disabled|enable``: see, and undo, endpoints disabled by a 410 Gone.

The operations are in :mod:`assetline.webhooks`; this module parses, calls and prints.
"""

from __future__ import annotations

import json

import click

from assetline.cli._common import load_settings, run


@click.group("webhooks")
def webhooks_group() -> None:
    """Completion webhooks: endpoints disabled after answering 410 Gone."""


@webhooks_group.command("disabled")
def list_disabled() -> None:
    """Print disabled endpoints as JSON lines, oldest first."""
    # Imported here: agents.notify loads httpx and the egress guard, ~50 ms of every
    # 'assetline --help' otherwise.
    from agents.notify.disabled import entry_json
    from assetline.webhooks import DisabledTopicMissingError, load_disabled

    settings = load_settings()
    try:
        registry = run(load_disabled(settings), settings)
    except DisabledTopicMissingError as exc:
        raise click.ClickException(str(exc)) from None
    for entry in registry.entries():
        click.echo(json.dumps(entry_json(entry)))
    click.echo(f"{len(registry)} disabled", err=True)


@webhooks_group.command("enable")
@click.argument("url_or_sha256")
def enable(url_or_sha256: str) -> None:
    """Call URL_OR_SHA256 again: the exact webhook URL, or its url_sha256 from 'disabled'."""
    # Imported here: agents.notify loads httpx and the egress guard, ~50 ms of every
    # 'assetline --help' otherwise.
    from agents.notify.disabled import entry_json
    from assetline.webhooks import DisabledTopicMissingError, enable_endpoint

    settings = load_settings()
    try:
        entry = run(enable_endpoint(settings, url_or_sha256), settings)
    except DisabledTopicMissingError as exc:
        raise click.ClickException(str(exc)) from None
    if entry is None:
        raise click.ClickException(
            "no disabled endpoint with that URL or digest; see 'assetline webhooks disabled'"
        )
    click.echo(json.dumps({"enabled": entry_json(entry)}))
