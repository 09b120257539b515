"""``assetline dlq list|show|replay``: inspect the dead-letter topic and re-drive after a fix."""

from __future__ import annotations

import dataclasses
import json

import click

from assetline.cli._common import load_settings, request_marker, run
from assetline.dead_letter_view import DeadLetterDetail, DeadLetterView, groups
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
@click.option("--stage", "stages", multiple=True, help="Only this stage (repeatable).")
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many rows.")
@click.option("--width", type=click.IntRange(10), default=60, show_default=True, help="Reason.")
@click.option("--counts", is_flag=True, help="Count dead letters per stage and code instead.")
def dlq_list(
    codes: tuple[str, ...], stages: tuple[str, ...], limit: int | None, width: int, counts: bool
) -> None:
    """A table of dead letters: position, time, stage, code, key, reason, source.

    The position (PARTITION:OFFSET) is what 'dlq show' and 'dlq replay --offset' take.
    """
    settings = load_settings()
    names = TopicNames.with_prefix(settings.topic_prefix)
    letters = run(read_deadletters(settings, names), settings)
    chosen = [d for d in select(letters, codes=codes) if not stages or d.stage in stages]
    if not chosen:
        click.echo(
            f"no dead letters on {names.deadletter}"
            + (" with that stage or code" if codes or stages else ""),
            err=True,
        )
        return
    if counts:
        view = DeadLetterView(settings, names=names)
        rows = [("count", "stage", "code")]
        rows += [(str(g.count), g.stage, g.code) for g in groups(map(view.row, chosen))]
        widths = [max(len(r[i]) for r in rows) for i in range(3)]
        for r in rows:
            click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
        return
    chosen = chosen if limit is None else chosen[:limit]
    click.echo(table(chosen, width))
    click.echo(f"{len(chosen)} of {len(letters)} dead letter(s) shown", err=True)


def _detail_text(detail: DeadLetterDetail) -> list[str]:
    row, value = detail.row, detail.value
    request = "-" if row.request_id is None else f"{row.request_id} attempt {row.attempt}"
    key = row.key
    if detail.key_truncated_from is not None:
        key += f" (cut from {detail.key_truncated_from} bytes)"
    lines = [
        f"{name:<9} {text}"
        for name, text in (
            ("position", str(row.position)),
            ("time", row.time),
            ("stage", row.stage),
            ("code", row.code),
            ("key", key),
            ("request", request),
            ("source", row.source),
            ("reason", row.reason),
        )
    ]
    lines.append("headers:")
    width = max((len(h.name) for h in detail.headers), default=0)
    lines += [f"  {h.name:<{width}}  {h.value}" for h in detail.headers]
    what = value.record_type or value.media_type
    lines.append(f"value: {value.size} bytes, {what}")
    if value.parked is not None:
        lines.append(f"  parked at {value.parked}")
    if value.truncated_from is not None:
        lines.append(f"  cut from {value.truncated_from} bytes to fit the dead-letter topic")
    if value.error is not None:
        lines.append(f"  does not decode: {value.error}")
    if value.preview is not None:
        lines.append(f"  text: {value.preview}")
    width = max((len(name) for name, _ in value.fields), default=0)
    lines += [f"  {name:<{width}}  {text}" for name, text in value.fields]
    return lines


@dlq_group.command(name="show")
@click.argument("position")
@click.option("--json", "as_json", is_flag=True, help="One JSON object instead of text.")
def dlq_show(position: str, as_json: bool) -> None:
    """One dead letter: its headers (secrets masked) and its value, decoded when it decodes.

    POSITION is PARTITION:OFFSET as 'dlq list' shows it (PARTITION@OFFSET also works; a bare
    OFFSET when only one partition has it).
    """
    (where,) = _positions((position,))
    settings = load_settings()
    names = TopicNames.with_prefix(settings.topic_prefix)
    letters = run(read_deadletters(settings, names), settings)
    found = select(letters, positions=[where])
    if not found:
        raise click.ClickException(f"no dead letter at {position} on {names.deadletter}")
    if len(found) > 1:
        at = ", ".join(f"{d.partition}:{d.offset}" for d in found)
        raise click.ClickException(f"offset {position} is in several partitions ({at}): say one")
    detail = DeadLetterView(settings, names=names).detail(found[0])
    if as_json:
        data = dataclasses.asdict(detail)
        data["row"]["position"] = str(detail.row.position)
        data["value"]["fields"] = dict(detail.value.fields)
        click.echo(json.dumps(data, indent=2, ensure_ascii=False))
        return
    for line in _detail_text(detail):
        click.echo(line)


@dlq_group.command(name="replay")
@click.option("--code", "codes", multiple=True, help="Only this error code (repeatable).")
@click.option("--offset", "offsets", multiple=True, help="PARTITION:OFFSET or OFFSET (repeatable).")
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
    found = [(i.letter.partition, i.letter.offset) for i in report.items]
    for text, (partition, offset) in zip(offsets, positions, strict=True):
        if not any(o == offset and partition in (None, p) for p, o in found):
            click.echo(f"{text} skipped: no dead letter at that position")
    sent = report.count("redriven") + report.count("verbatim")
    skipped = len(report.items) - sent
    verb = "would re-drive" if dry_run else "re-drove"
    click.echo(
        f"{verb} {sent} dead letter(s), skipped {skipped} (replay id {report.replay_id})", err=True
    )
