"""``assetline worker|submit|tail|topics``: run and talk to a line."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from aiokafka import ConsumerRecord
from aiokafka.errors import KafkaError

from agents.stage_graph import stages_help, unfed_warnings
from assetline.cli._common import (
    PRIORITY_CHOICES,
    deadline_option,
    delivery_verdict,
    fail,
    load_settings,
    priority_option,
    run,
)
from assetline.client import LineClient
from assetline.submit import RequestFileError, new_requests, read_requests
from assetline.tail import UnknownTopicError, render_message, resolve_topic, tail_topic
from schemas.records import AssetCompleted, AssetKind, Constraints, ModelSpec, Priority
from streams.codecs import Codecs
from streams.config_files import ConfigError, one_line
from streams.kafka_security import connect_failure
from streams.topics import TopicNames, ensure_topics, line_topic_specs


@click.command()
@click.option("--stages", default=None, help=stages_help())
@click.option("--web-port", type=int, default=None, help="Port for /metrics (0 disables).")
def worker(stages: str | None, web_port: int | None) -> None:
    """Run the line's stages until stopped (creates missing topics first)."""
    # Imported here: the worker loads Faust and every stage, ~1 s of every other command.
    from assetline.worker import run_worker

    settings = load_settings(stages=stages, web_port=web_port)
    for warning in unfed_warnings(settings.stages, TopicNames.with_prefix(settings.topic_prefix)):
        click.echo(warning, err=True)
    try:
        run_worker(settings)
    except ConfigError as exc:  # a configuration mistake: one line naming it, never a traceback
        raise click.ClickException(one_line(str(exc))) from None
    except (KafkaError, ConnectionError, OSError) as exc:
        raise click.ClickException(connect_failure(settings, exc)) from None


@click.command()
def topics() -> None:
    """Create the line's topics if missing (a worker does this too)."""
    settings = load_settings()
    created = run(ensure_topics(settings, line_topic_specs(settings)), settings)
    click.echo(f"created {len(created)} topic(s)" + (f": {', '.join(created)}" if created else ""))


def _parse_vars(pairs: tuple[str, ...]) -> dict[str, str]:
    variables = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected name=value, got {pair!r}", param_hint="--var")
        variables[name] = value
    return variables


@click.command()
@click.option("--file", "file_", type=click.Path(exists=True, path_type=Path), default=None)
@click.option("--kind", type=click.Choice([k.value for k in AssetKind]), default="TEXT")
@click.option("--tenant", default="acme", show_default=True)
@click.option("--campaign", default="adhoc", show_default=True)
@click.option("--prompt", default="Say hello to ${persona}", show_default=True)
@click.option("--var", "variables", multiple=True, help="Template variable name=value.")
@click.option("--width", type=int, default=None)
@click.option("--height", type=int, default=None)
@click.option("--format", "fmt", default=None, help="png, jpeg or webp (images).")
@click.option("--max-chars", type=int, default=None)
@click.option("--count", type=click.IntRange(1), default=1, show_default=True)
@click.option("--brand-profile", default=None, help="Brand profile id to validate against.")
@click.option("--alias", default=None, help="Model alias from the routing file.")
@click.option("--callback-url", default=None, help="Webhook URL for this request's completion.")
@click.option(
    "--priority",
    type=click.Choice(PRIORITY_CHOICES, case_sensitive=False),
    callback=priority_option,
    default=None,
    help="Scheduling lane: waiting HIGH requests go first, LOW last (default: normal).",
)
@click.option(
    "--deadline",
    callback=deadline_option,
    default=None,
    metavar="DURATION",
    help="The request's deadline, sent as its latency_budget_ms (90s, 30m, 24h).",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="SECONDS",
    help="Wait this long for the completions; exit 3 if some have none, 4 if not all "
    "were DELIVERED.",
)
@click.pass_context
def submit(
    ctx: click.Context,
    file_: Path | None,
    kind: str,
    tenant: str,
    campaign: str,
    prompt: str,
    variables: tuple[str, ...],
    width: int | None,
    height: int | None,
    fmt: str | None,
    max_chars: int | None,
    count: int,
    brand_profile: str | None,
    alias: str | None,
    callback_url: str | None,
    priority: Priority | None,
    deadline: int | None,
    wait: float | None,
) -> None:
    """Publish requests from a JSONL file, or one built from flags (--count times)."""
    settings = load_settings()
    building = (brand_profile, alias, callback_url, priority, deadline)
    if file_ is not None and any(flag is not None for flag in building):
        raise click.UsageError(
            "--brand-profile, --alias, --callback-url, --priority and --deadline build a "
            "request; with --file, set them in the file (priority, latency_budget_ms)"
        )
    if file_ is not None:
        try:
            requests = read_requests(file_)
        except RequestFileError as exc:
            raise click.ClickException(str(exc)) from None
    else:
        requests = new_requests(
            count,
            tenant=tenant,
            campaign_id=campaign,
            kind=AssetKind(kind),
            prompt_template=prompt,
            variables=_parse_vars(variables),
            constraints=Constraints(width=width, height=height, format=fmt, max_chars=max_chars),
            brand_profile_id=brand_profile,
            model=ModelSpec(alias=alias),
            callback_url=callback_url,
            priority=priority or Priority.NORMAL,
            latency_budget_ms=deadline,
        )

    ids = [r.request_id for r in requests]

    async def go() -> int:
        async with LineClient(settings) as client:
            return await client.submit(requests)

    sent = run(go(), settings)
    for request_id in ids:
        click.echo(request_id)
    names = TopicNames.with_prefix(settings.topic_prefix)
    topics = " and ".join(sorted({names.requests_for(r.priority) for r in requests}))
    click.echo(f"submitted {sent} request(s) to {topics or names.requests}", err=True)
    if wait is None:
        return

    async def completions() -> dict[str, AssetCompleted]:
        async with LineClient(settings) as client:
            return await client.await_completions(
                ids, timeout=wait, on_completion=lambda d: click.echo(completion_line(d))
            )

    verdict = delivery_verdict(ids, run(completions(), settings))
    if verdict is not None:
        fail(ctx, *verdict)


def completion_line(done: AssetCompleted) -> str:
    """``<request_id> <status> <location or reasons>``, as the example producers print it."""
    return f"{done.request_id} {done.status.value} {done.location or '; '.join(done.reasons)}"


@click.command()
@click.argument("topic")
@click.option("--from-beginning/--from-end", default=True, show_default=True)
@click.option("--limit", type=int, default=None, help="Stop after this many messages.")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Idle seconds.")
def tail(topic: str, from_beginning: bool, limit: int | None, timeout: float) -> None:
    """Print a topic's events decoded as JSON lines (TOPIC: requests, raw, ..., or a name)."""
    settings = load_settings()
    name = resolve_topic(settings, topic)
    names = TopicNames.with_prefix(settings.topic_prefix)
    codecs = Codecs.load()

    def show(m: ConsumerRecord[bytes, bytes]) -> None:
        click.echo(render_message(name, names, codecs, m.value, m.headers, m.key))

    reading = tail_topic(
        settings,
        topic,
        name,
        show,
        from_beginning=from_beginning,
        limit=limit,
        idle_timeout=timeout,
    )
    try:
        count = run(reading, settings)
    except UnknownTopicError as exc:
        raise click.ClickException(str(exc)) from None
    if count == 0:
        click.echo(f"no messages on {name}", err=True)
    sys.stdout.flush()
