"""``assetline status REQUEST_ID``: everything that happened to one request, in time order.

Reads the line's topics once to their end (only that request's records are decoded) through
:mod:`assetline.timeline`, the same index the console keeps, and prints its timeline.
"""

from __future__ import annotations

import json

import click

from assetline.cli._common import fail, load_settings, run
from assetline.timeline import RequestIndex, read_request, timeline_json, timeline_text
from streams.codecs import Codecs


@click.command()
@click.argument("request_id")
@click.option("--json", "as_json", is_flag=True, help="Print the timeline as one JSON object.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    help="Seconds allowed to read the topics to their end.",
)
@click.pass_context
def status(ctx: click.Context, request_id: str, as_json: bool, timeout: float) -> None:
    """Print a request's timeline: requested, generated (provider, model, cost), validated,
    review, delivered (where), webhooks, dead letters, completion. Exits 1 when the line's
    topics hold no record of REQUEST_ID."""
    settings = load_settings()
    index = RequestIndex(Codecs.load(), only={request_id})
    complete = run(read_request(settings, index, timeout=timeout), settings)
    if not complete:
        click.echo(f"warning: topics not read to their end in {timeout:g}s", err=True)
    entries = index.timeline(request_id)
    if not entries:
        fail(ctx, 1, f"no record of request {request_id!r} on the line's topics")
    if as_json:
        click.echo(json.dumps(timeline_json(request_id, entries, index.state(request_id))))
    else:
        click.echo(timeline_text(request_id, entries))
