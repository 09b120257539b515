"""``assetline`` command line: broker, worker, submit, campaign, tail, replay, dlq, demo, schemas,
topics, review, webhooks, blobs, models, console, policy.

Every command turns expected failures (bad arguments, no broker) into one line on stderr and a
non-zero exit; a traceback means a bug.
"""

from __future__ import annotations

import sys

import click

from assetline.cli._alerts import alerts_group
from assetline.cli._blobs import blobs_group
from assetline.cli._broker import broker
from assetline.cli._campaign import campaign
from assetline.cli._console import console_group
from assetline.cli._demo import demo
from assetline.cli._dlq import dlq_group
from assetline.cli._line import submit, tail, topics, worker
from assetline.cli._models import models_group
from assetline.cli._policy import policy_group
from assetline.cli._replay import replay
from assetline.cli._review import review_group
from assetline.cli._schemas import schemas_group
from assetline.cli._status import status
from assetline.cli._webhooks import webhooks_group
from schemas.errors import AssetlineError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="assetline", prog_name="assetline")
def cli() -> None:
    """assetline: generate, validate and deliver AI assets over Kafka."""


cli.add_command(broker)
cli.add_command(campaign)
cli.add_command(worker)
cli.add_command(submit)
cli.add_command(tail)
cli.add_command(topics)
cli.add_command(demo)
cli.add_command(schemas_group)
cli.add_command(review_group)
cli.add_command(replay)
cli.add_command(dlq_group)
cli.add_command(webhooks_group)
cli.add_command(blobs_group)
cli.add_command(models_group)
cli.add_command(console_group)
cli.add_command(status)
cli.add_command(alerts_group)
cli.add_command(policy_group)


def main(args: list[str] | None = None) -> None:
    """Run the CLI; an :class:`AssetlineError` that no command turned into a message (say, a
    submit whose sends were not all acknowledged) still ends as one line with its code."""
    try:
        cli(args, prog_name="assetline")
    except AssetlineError as exc:
        click.echo(f"Error: {exc} ({exc.code})", err=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
