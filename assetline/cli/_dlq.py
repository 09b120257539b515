"""``assetline dlq list|replay``: inspect the dead-letter topic and re-drive after a fix."""

from __future__ import annotations

import click

from assetline.cli._common import load_settings, request_marker, run
from assetline.redrive import (
    RedriveReport,
    parse_position,
    read_deadletters,
    redrive,
    report_lines,
    select,
    table,
)
from assetline.replay.rewrite import Rewriter
from assetline.replay.topics import full_name
from streams.blobs import open_blob_store
from streams.codecs import Codecs
from streams.topics import TopicNames


@click.group(name="dlq")
def dlq_group() -> None:
    """The dead-letter topic: what was parked, why, and re-driving it."""


def _positions(values: tuple[str, ...]) -> list[tuple[int | None, int]]:
    try:
        return [parse_position(v) for v in values]
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--offset") from None


@dlq_group.command(name="list")
@click.option("--code", "codes", multiple=True, help="Only this error code (repeatable).")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many rows.")
@click.option("--width", type=click.IntRange(10), default=60, show_default=True, help="Reason.")
def dlq_list(codes: tuple[str, ...], limit: int | None, width: int) -> None:
    """A table of dead letters: position, time, stage, code, reason, source."""
    settings = load_settings()
    names = TopicNames.with_prefix(settings.topic_prefix)
    letters = run(read_deadletters(settings, names), settings)
    chosen = select(letters, codes=codes, limit=limit)
    if not chosen:
        click.echo(
            f"no dead letters on {names.deadletter}" + (" with that code" if codes else ""),
            err=True,
        )
        return
    click.echo(table(chosen, width))
    click.echo(f"{len(chosen)} of {len(letters)} dead letter(s) shown", err=True)


@dlq_group.command(name="replay")
@click.option("--code", "codes", multiple=True, help="Only this error code (repeatable).")
@click.option("--offset", "offsets", multiple=True, help="OFFSET or PARTITION:OFFSET (repeatable).")
@click.option("--to-source", is_flag=True, help="Send each to its source topic (from headers).")
@click.option("--into", default=None, help="Send all to this topic instead.")
@click.option("--generation", type=click.IntRange(1), default=None, help="As for 'replay'.")
@click.option("--dry-run", is_flag=True, help="Report what would be re-driven; write nothing.")
def dlq_replay(
    codes: tuple[str, ...],
    offsets: tuple[str, ...],
    to_source: bool,
    into: str | None,
    generation: int | None,
    dry_run: bool,
) -> None:
    """Re-drive dead letters after a fix, as new attempts, without the dead-letter headers.

    Re-driving the same dead letter again yields the same attempt: one completion, not two.
    """
    if to_source == (into is not None):
        raise click.UsageError("say where to: --to-source or --into TOPIC (one of them)")
    positions = _positions(offsets)
    settings = load_settings()
    names = TopicNames.with_prefix(settings.topic_prefix)
    target = full_name(names, into) if into is not None else None

    async def go() -> RedriveReport:
        letters = select(
            await read_deadletters(settings, names),
            codes=codes,
            positions=positions,
        )
        # Values parked in the line's S3 blob store are read back through it.
        blobs = open_blob_store(settings) if settings.blob_store == "s3" else None
        try:
            return await redrive(
                settings,
                names,
                letters,
                Rewriter(Codecs.load()),
                into=target,
                generation=generation,
                dry_run=dry_run,
                marker=request_marker(settings),
                blobs=blobs,
            )
        finally:
            if blobs is not None:
                await blobs.aclose()

    report = run(go(), settings)
    for line in report_lines(report):
        click.echo(line)
    sent = report.count("redriven") + report.count("verbatim")
    skipped = len(report.items) - sent
    verb = "would re-drive" if dry_run else "re-drove"
    click.echo(
        f"{verb} {sent} dead letter(s), skipped {skipped} (replay id {report.replay_id})", err=True
    )
