"""``assetline replay``: republish a range of a line topic as new attempts."""

from __future__ import annotations

import click

from assetline.cli._common import load_settings, request_marker, run
from assetline.replay.plan import plan_replay
from assetline.replay.ranges import PartitionRange, RangeError, parse_bound
from assetline.replay.republish import ReplayReport, report_table, republish
from assetline.replay.rewrite import Rewriter
from assetline.replay.topics import TopicChoiceError
from streams.codecs import Codecs
from streams.topics import TopicNames


@click.command()
@click.option("--topic", required=True, help="requests, raw, approved, rejected, review (or full).")
@click.option("--from", "from_", required=True, help="First offset, or ISO time (inclusive).")
@click.option("--to", default=None, help="End offset, or ISO time (exclusive); default: end now.")
@click.option("--partition", type=click.IntRange(0), default=None, help="Only this partition.")
@click.option("--into", default=None, help="Target topic; required even to replay into itself.")
@click.option(
    "--generation",
    type=click.IntRange(1),
    default=None,
    help="Replay generation (attempt = generation*1000 + attempt); default: the record's + 1.",
)
@click.option("--dry-run", is_flag=True, help="Read and decode the range; write nothing.")
def replay(
    topic: str,
    from_: str,
    to: str | None,
    partition: int | None,
    into: str | None,
    generation: int | None,
    dry_run: bool,
) -> None:
    """Republish a range of TOPIC as new attempts (same keys, replay headers).

    Re-running the same range yields the same attempts, which the deliver ledger completes once.
    """
    settings = load_settings()
    names = TopicNames.with_prefix(settings.topic_prefix)
    try:
        start, stop = parse_bound(from_), (parse_bound(to) if to is not None else None)
    except RangeError as exc:
        raise click.BadParameter(str(exc), param_hint="--from/--to") from None

    async def go() -> tuple[ReplayReport, list[PartitionRange]]:
        plan = await plan_replay(settings, names, topic, into, start, stop, partition)
        report = await republish(
            settings,
            plan.topics.source,
            plan.topics.kind,
            plan.ranges,
            plan.topics.target,
            Rewriter(Codecs.load()),
            generation=generation,
            dry_run=dry_run,
            marker=request_marker(settings),
        )
        return report, plan.ranges

    try:
        report, ranges = run(go(), settings)
    except (TopicChoiceError, RangeError) as exc:
        raise click.ClickException(str(exc)) from None
    verb = "would replay" if dry_run else "replayed"
    click.echo(report_table(report, ranges))
    t = report.total()
    click.echo(
        f"{verb} {t.written} of {t.read} record(s) from {report.source} into {report.target} "
        f"in {report.seconds:.2f}s (replay id {report.replay_id}); "
        f"{t.undecodable} undecodable, {t.superseded} superseded and {t.refused} refused "
        "(not admissible: forged attempt or unsigned) skipped",
        err=True,
    )
