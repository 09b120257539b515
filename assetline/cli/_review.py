"""``assetline review``: list the assets waiting for a person, show one, approve or reject it.

The operations are in :mod:`assetline.review`; this module parses, calls and prints.
"""

from __future__ import annotations

import json

import click

from assetline.cli._common import load_settings, run
from assetline.review import (
    ReviewError,
    item_for,
    item_summary,
    load_items,
    new_decision,
    pending_count,
    send_decision,
    shown_items,
)
from schemas.records import ReviewAction
from streams.codecs import Codecs


@click.group("review")
def review_group() -> None:
    """Human review of assets that failed validation and could not be repaired."""


@review_group.command("list")
@click.option("--all", "show_all", is_flag=True, help="Include decided items.")
@click.option("--campaign", default=None, help="Only this campaign.")
def list_items(show_all: bool, campaign: str | None) -> None:
    """Print pending items as JSON lines (oldest first)."""
    settings = load_settings()
    items = run(load_items(settings, Codecs.load()), settings)
    shown = shown_items(items.values(), include_decided=show_all, campaign=campaign)
    for item in shown:
        click.echo(json.dumps(item_summary(item), ensure_ascii=False))
    click.echo(f"{len(shown)} shown, {pending_count(items.values())} pending", err=True)


@review_group.command("show")
@click.argument("request_id")
def show(request_id: str) -> None:
    """Print one item with its full validation report."""
    settings = load_settings()
    items = run(load_items(settings, Codecs.load()), settings)
    try:
        item = item_for(items, request_id)
    except ReviewError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(item.model_dump(mode="json"), ensure_ascii=False, indent=2))


def _decide(request_id: str, action: ReviewAction, reviewer: str, note: str | None) -> None:
    settings = load_settings()
    codecs = Codecs.load()
    decision = new_decision(request_id, action, reviewer, note)
    try:
        run(send_decision(settings, codecs, decision), settings)
    except ReviewError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(decision.model_dump(mode="json"), ensure_ascii=False))


@review_group.command("approve")
@click.argument("request_id")
@click.option("--reviewer", required=True, help="Who decides; recorded in the completion.")
@click.option("--note", default=None, help="Why.")
def approve(request_id: str, reviewer: str, note: str | None) -> None:
    """Deliver the asset despite its failed checks."""
    _decide(request_id, ReviewAction.APPROVE, reviewer, note)


@review_group.command("reject")
@click.argument("request_id")
@click.option("--reviewer", required=True, help="Who decides; recorded in the completion.")
@click.option("--note", default=None, help="Why; shown first in the completion's reasons.")
def reject(request_id: str, reviewer: str, note: str | None) -> None:
    """End the request as REJECTED."""
    _decide(request_id, ReviewAction.REJECT, reviewer, note)
