"""``assetline status``: everything that happened to one request, or where a campaign stands.

Reads the line's topics once to their end through :mod:`assetline.timeline`, the same index
the console keeps (for one request, only its records are decoded), and prints.
"""

from __future__ import annotations

import json

import click

from assetline.cli._common import fail, load_settings, run
from assetline.timeline import (
    RequestIndex,
    campaign_progress,
    progress_text,
    read_once,
    timeline_json,
    timeline_text,
)
from streams.codecs import Codecs

#: A campaign read: every request of the line is indexed (the index's bound, raised).
CAMPAIGN_MAX_REQUESTS = 10_000_000


@click.command()
@click.argument("request_id", required=False)
@click.option(
    "--campaign",
    "campaign_id",
    default=None,
    help="Show this campaign's progress instead of a request's timeline.",
)
@click.option(
    "--window",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="With --campaign: seconds of completions the rate (and time left) is measured on.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds allowed to read the topics to their end.",
)
@click.pass_context
def status(
    ctx: click.Context,
    request_id: str | None,
    campaign_id: str | None,
    window: float,
    as_json: bool,
    timeout: float,
) -> None:
    """Print REQUEST_ID's timeline: requested, generated (provider, model, cost), validated,
    review, delivered (where), webhooks, dead letters, completion, in time order. With
    --campaign, the campaign's progress: by status (waiting in review apart), failures by
    reason code, cost, rate and time left. Exits 1 when the topics hold no record of it."""
    if (request_id is None) == (campaign_id is None):
        raise click.UsageError("give a REQUEST_ID or --campaign CAMPAIGN_ID (one of them)")
    settings = load_settings()
    codecs = Codecs.load()
    if request_id is None:
        index = RequestIndex(codecs, max_requests=CAMPAIGN_MAX_REQUESTS)
    else:
        index = RequestIndex(codecs, only={request_id})
    complete = run(read_once(settings, index, timeout=timeout), settings)
    if not complete:
        click.echo(f"warning: topics not read to their end in {timeout:g}s", err=True)
    if campaign_id is not None:
        progress = campaign_progress(index, campaign_id, window_s=window)
        if progress.requests == 0:
            fail(ctx, 1, f"no request of campaign {campaign_id!r} on the line's topics")
        click.echo(json.dumps(progress.as_json()) if as_json else progress_text(progress))
        return
    assert request_id is not None
    entries = index.timeline(request_id)
    if not entries:
        fail(ctx, 1, f"no record of request {request_id!r} on the line's topics")
    if as_json:
        click.echo(json.dumps(timeline_json(request_id, entries, index.state(request_id))))
    else:
        click.echo(timeline_text(request_id, entries))
