"""``assetline review``: list the assets waiting for a person, show one, approve or reject it.

Pending items are read from the review table's changelog (``<prefix>.review.items``), so the
command needs only the broker, not a running worker; a decision is an Avro
``ReviewDecision`` on ``<prefix>.review.decisions``, keyed by request id, which is exactly what
any other tool (a review UI, a chat bot) may publish instead.
"""

from __future__ import annotations

import json
import uuid

import click

from assetline.cli._common import load_settings, run
from assetline.client import LineClient
from schemas.records import ReviewAction, ReviewDecision, ReviewItem, ReviewStatus
from streams.codecs import CodecError, Codecs
from streams.kafka import read_to_end
from streams.settings import Settings
from streams.topics import TopicNames


async def load_items(settings: Settings, codecs: Codecs) -> dict[str, ReviewItem]:
    """The latest item per request id; deleted (tombstoned) and undecodable entries skipped."""
    topic = TopicNames.with_prefix(settings.topic_prefix).review_items
    items: dict[str, ReviewItem] = {}
    for record in await read_to_end(settings.kafka_bootstrap, topic):
        if record.key is None:
            continue
        key = record.key.decode("utf-8", errors="replace")
        if record.value is None:
            items.pop(key, None)
            continue
        try:
            items[key] = codecs.review_item.decode(record.value)
        except CodecError:
            continue
    return items


def summary(item: ReviewItem) -> dict[str, object]:
    request = item.asset.raw.request
    blob = item.asset.raw.blob
    failed = [f"{c.code}: {c.message}" for c in item.asset.report.checks if not c.passed]
    return {
        "request_id": item.request_id,
        "status": item.status.value,
        "tenant": request.tenant,
        "campaign_id": request.campaign_id,
        "attempt": request.attempt,
        "profile": item.asset.report.profile,
        "queued_at": item.queued_at.isoformat(),
        "asset": blob.uri if blob is not None else None,
        "failed": failed,
        "decision": item.decision.model_dump(mode="json") if item.decision else None,
    }


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
    shown = sorted(
        (
            item
            for item in items.values()
            if (show_all or item.status is ReviewStatus.PENDING)
            and (campaign is None or item.asset.raw.request.campaign_id == campaign)
        ),
        key=lambda item: item.queued_at,
    )
    for item in shown:
        click.echo(json.dumps(summary(item), ensure_ascii=False))
    pending = sum(1 for item in items.values() if item.status is ReviewStatus.PENDING)
    click.echo(f"{len(shown)} shown, {pending} pending", err=True)


@review_group.command("show")
@click.argument("request_id")
def show(request_id: str) -> None:
    """Print one item with its full validation report."""
    settings = load_settings()
    items = run(load_items(settings, Codecs.load()), settings)
    item = items.get(request_id)
    if item is None:
        raise click.ClickException(f"no review item for request {request_id!r}")
    click.echo(json.dumps(item.model_dump(mode="json"), ensure_ascii=False, indent=2))


def _decide(request_id: str, action: ReviewAction, reviewer: str, note: str | None) -> None:
    settings = load_settings()
    codecs = Codecs.load()
    decision = ReviewDecision(
        decision_id=str(uuid.uuid4()),
        request_id=request_id,
        action=action,
        reviewer=reviewer,
        note=note,
    )

    async def go() -> str | None:
        item = (await load_items(settings, codecs)).get(request_id)
        if item is None:
            return f"no review item for request {request_id!r}"
        if item.status is not ReviewStatus.PENDING:
            by = item.decision.reviewer if item.decision else "someone"
            return f"request {request_id!r} was already {item.status.value.lower()} by {by}"
        async with LineClient(settings, codecs) as client:
            await client.send_raw(
                client.topics.review_decisions,
                request_id.encode("utf-8"),
                codecs.review_decision.encode(decision),
            )
        return None

    problem = run(go(), settings)
    if problem is not None:
        raise click.ClickException(problem)
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
