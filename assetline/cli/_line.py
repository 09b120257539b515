"""``assetline worker|submit|tail|topics``: run and talk to a line."""

from __future__ import annotations

import base64
import difflib
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import click
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from agents.stage_graph import stages_help, unfed_warnings
from assetline.cli._common import delivery_verdict, fail, load_settings, run
from assetline.client import LineClient
from schemas.records import AssetCompleted, AssetKind, Constraints, GenerationRequest, ModelSpec
from streams.codecs import CodecError, Codecs, SingleObjectCodec
from streams.config_files import ConfigError, one_line
from streams.dead_letters import header_map
from streams.settings import Settings
from streams.topics import TopicNames, ensure_topics, line_topic_specs


@click.command()
@click.option("--stages", default=None, help=stages_help())
@click.option("--web-port", type=int, default=None, help="Port for /metrics (0 disables).")
def worker(stages: str | None, web_port: int | None) -> None:
    """Run the line's stages until stopped (creates missing topics first)."""
    from assetline.worker import run_worker

    settings = load_settings(stages=stages, web_port=web_port)
    for warning in unfed_warnings(settings.stages, TopicNames.with_prefix(settings.topic_prefix)):
        click.echo(warning, err=True)
    try:
        run_worker(settings)
    except ConfigError as exc:  # a configuration mistake: one line naming it, never a traceback
        raise click.ClickException(one_line(str(exc))) from None
    except (KafkaError, ConnectionError, OSError) as exc:
        raise click.ClickException(
            f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}"
        ) from None


@click.command()
def topics() -> None:
    """Create the line's topics if missing (a worker does this too)."""
    settings = load_settings()
    created = run(ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings)), settings)
    click.echo(f"created {len(created)} topic(s)" + (f": {', '.join(created)}" if created else ""))


def _parse_vars(pairs: tuple[str, ...]) -> dict[str, str]:
    variables = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected name=value, got {pair!r}", param_hint="--var")
        variables[name] = value
    return variables


def _requests_from_file(path: Path) -> list[GenerationRequest]:
    requests = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            data: dict[str, Any] = json.loads(line)
            data.setdefault("request_id", str(uuid.uuid4()))
            data.setdefault("idempotency_key", data["request_id"])
            requests.append(GenerationRequest.model_validate(data))
        except (json.JSONDecodeError, ValidationError, TypeError, AttributeError) as exc:
            detail = str(exc).splitlines()[0]
            raise click.ClickException(f"{path}:{number}: not a valid request: {detail}") from None
    return requests


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
    wait: float | None,
) -> None:
    """Publish requests from a JSONL file, or one built from flags (--count times)."""
    settings = load_settings()
    if file_ is not None and (brand_profile or alias or callback_url):
        raise click.UsageError(
            "--brand-profile, --alias and --callback-url build a request; "
            "with --file, set them in the file"
        )
    if file_ is not None:
        requests = _requests_from_file(file_)
    else:
        template = {
            "tenant": tenant,
            "campaign_id": campaign,
            "kind": AssetKind(kind),
            "prompt_template": prompt,
            "variables": _parse_vars(variables),
            "constraints": Constraints(width=width, height=height, format=fmt, max_chars=max_chars),
            "brand_profile_id": brand_profile,
            "model": ModelSpec(alias=alias),
            "callback_url": callback_url,
        }
        requests = []
        for _ in range(count):
            request_id = str(uuid.uuid4())
            requests.append(
                GenerationRequest(request_id=request_id, idempotency_key=request_id, **template)
            )

    ids = [r.request_id for r in requests]

    async def go() -> int:
        async with LineClient(settings) as client:
            return await client.submit(requests)

    sent = run(go(), settings)
    for request_id in ids:
        click.echo(request_id)
    click.echo(
        f"submitted {sent} request(s) to {TopicNames.with_prefix(settings.topic_prefix).requests}",
        err=True,
    )
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


def _resolve_topic(settings: Settings, topic: str) -> str:
    names = TopicNames.with_prefix(settings.topic_prefix)
    return getattr(names, topic, topic) if topic in names.__dataclass_fields__ else topic


def unknown_topic_error(asked: str, name: str, names: TopicNames, existing: set[str]) -> str:
    """One line for a topic that does not exist: the closest name, then the line's topics.

    Pure, so the wording is tested without a broker. The line's topics are offered in the
    short form ``tail`` takes (``completed``); other topics only count, or are suggested
    when one is closest.
    """
    short = {full: field for field, full in vars(names).items()}
    line = sorted(short[t] for t in existing if t in short)
    others = sorted(t for t in existing if t not in short and not t.startswith("__"))
    close = difflib.get_close_matches(asked, line + others, n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    listed = ", ".join(line) if line else "none yet (run 'assetline topics' or a worker)"
    more = f" (and {len(others)} other topic(s))" if others else ""
    return f"no topic {name!r}{hint} line topics: {listed}{more}"


def render(
    topic: str,
    names: TopicNames,
    codecs: Codecs,
    value: bytes,
    headers: Any,
    key: bytes | None = None,
) -> str:
    """One message as a JSON line; undecodable values are shown as base64 with the error.

    The key is shown too: on ``.deadletter`` it is the only readable trace of whose message
    a malformed value was.
    """
    by_topic: dict[str, SingleObjectCodec[Any]] = {
        names.requests: codecs.request,
        names.raw: codecs.raw,
        names.approved: codecs.validated,
        names.rejected: codecs.validated,
        names.completed: codecs.completed,
        names.alerts: codecs.alert,
        names.review: codecs.validated,
        names.review_decisions: codecs.review_decision,
        names.review_items: codecs.review_item,
        names.webhooks: codecs.webhook_job,
    }
    codec = by_topic.get(topic)
    out: dict[str, Any] = {
        "topic": topic,
        "key": None if key is None else key.decode("utf-8", "backslashreplace"),
    }
    if codec is not None:
        try:
            out["value"] = codec.decode(value).model_dump(mode="json")
        except CodecError as exc:
            out["error"] = str(exc)
    if "value" not in out:
        out["value_base64"] = base64.b64encode(value or b"").decode()
        out["headers"] = header_map(headers)
    return json.dumps(out, ensure_ascii=False)


@click.command()
@click.argument("topic")
@click.option("--from-beginning/--from-end", default=True, show_default=True)
@click.option("--limit", type=int, default=None, help="Stop after this many messages.")
@click.option("--timeout", type=float, default=10.0, show_default=True, help="Idle seconds.")
def tail(topic: str, from_beginning: bool, limit: int | None, timeout: float) -> None:
    """Print a topic's events decoded as JSON lines (TOPIC: requests, raw, ..., or a name)."""
    settings = load_settings()
    name = _resolve_topic(settings, topic)
    names = TopicNames.with_prefix(settings.topic_prefix)
    codecs = Codecs.load()

    async def go() -> int:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            auto_offset_reset="earliest" if from_beginning else "latest",
            enable_auto_commit=False,
        )
        await consumer.start()
        printed = 0
        try:
            # Checked before subscribing: a consumer on a missing topic waits (and warns) for
            # it to appear, which looked like a hang for a typo.
            existing = await consumer.topics()
            if name not in existing:
                raise click.ClickException(unknown_topic_error(topic, name, names, existing))
            consumer.subscribe([name])
            while limit is None or printed < limit:
                batch = await consumer.getmany(timeout_ms=int(timeout * 1000))
                if not batch:
                    break
                for messages in batch.values():
                    for m in messages:
                        click.echo(render(name, names, codecs, m.value, m.headers, m.key))
                        printed += 1
                        if limit is not None and printed >= limit:
                            return printed
        finally:
            await consumer.stop()
        return printed

    count = run(go(), settings)
    if count == 0:
        click.echo(f"no messages on {name}", err=True)
    sys.stdout.flush()
