"""``assetline blobs sweep``: delete (or, with ``--dry-run``, list) blobs no event can still
reference, with the worker's own rules (streams/blob_sweep.py) on the configured blob store."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import click

from assetline.cli._common import load_settings, run
from streams.blob_sweep import SweepReport, claim_check_horizon, sweep_line_blobs
from streams.blobs import open_blob_store
from streams.registry import codecs_for_settings
from streams.settings import Settings


@click.group("blobs")
def blobs_group() -> None:
    """The claim-check blob store (settings blob_store, blob_dir, blob_s3_*)."""


@blobs_group.command("sweep")
@click.option("--dry-run", is_flag=True, help="List what would be deleted; delete nothing.")
def sweep_command(dry_run: bool) -> None:
    """Delete blobs older than the longest claim-check retention plus blob_sweep_grace_s that
    no pending (or recently decided) review item refers to. Prints one JSON line per blob
    (deleted, or that would be), then a summary on stderr."""
    settings = load_settings()
    report = run(_sweep(settings, dry_run), settings)
    for entry in report.deleted:
        line = {
            "sha256": entry.sha256,
            "size": entry.size,
            "modified": entry.modified.isoformat(),
            "action": "would_delete" if dry_run else "deleted",
        }
        click.echo(json.dumps(line))
    verb = "would free" if dry_run else "freed"
    click.echo(
        f"{report.examined} examined, {len(report.deleted)} {verb} {report.bytes_freed} bytes, "
        f"{report.kept_recent} recent, {report.kept_for_review} held by review, "
        f"{report.failed} failed (cutoff {report.cutoff.isoformat()}, "
        f"horizon {claim_check_horizon(settings)})",
        err=True,
    )
    if report.failed:
        raise SystemExit(1)


async def _sweep(settings: Settings, dry_run: bool) -> SweepReport:
    store = open_blob_store(settings)
    try:
        return await sweep_line_blobs(
            settings,
            codecs_for_settings(settings),
            store,
            now=datetime.now(UTC),
            dry_run=dry_run,
        )
    finally:
        await store.aclose()
