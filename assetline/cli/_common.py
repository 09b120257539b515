"""Shared CLI plumbing: settings from the environment, friendly errors, asyncio entry."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Mapping
from typing import Any, TypeVar

import click
from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic import ValidationError

from agents.tenants import Gatekeeper, TenantsFileError
from assetline.submit import RequestOptionError, parse_deadline, parse_priority
from schemas.records import AssetCompleted, CompletionStatus, Priority
from streams.kafka_security import connect_failure
from streams.settings import Settings
from streams.signing import RequestMarker

T = TypeVar("T")

#: Exit codes of commands that wait for completions (1 = error, 2 = usage).
EXIT_TIMEOUT = 3  # time ran out with requests that have no completion yet
EXIT_UNDELIVERED = 4  # every request completed, but not every one was DELIVERED
SHOW_IDS = 5


def delivery_verdict(
    request_ids: list[str], latest: Mapping[str, AssetCompleted]
) -> tuple[int, str] | None:
    """``None`` when every request was DELIVERED, else (exit code, one line saying why).

    A command that waits for completions must not exit 0 when the user's assets did not
    arrive (a demo that delivered 0 of 12 used to). FALLBACK counts as not delivered: the
    asset sent is the alias's fallback, not what was asked for.
    """
    missing = [rid for rid in request_ids if rid not in latest]
    if missing:
        more = f" (and {len(missing) - SHOW_IDS} more)" if len(missing) > SHOW_IDS else ""
        return EXIT_TIMEOUT, (
            f"{len(missing)} of {len(request_ids)} request(s) got no completion in time: "
            f"{', '.join(missing[:SHOW_IDS])}{more}"
        )
    bad = [rid for rid in request_ids if latest[rid].status is not CompletionStatus.DELIVERED]
    if not bad:
        return None
    counts: dict[str, int] = {}
    for rid in bad:
        counts[latest[rid].status.value] = counts.get(latest[rid].status.value, 0) + 1
    first = latest[bad[0]]
    why = "; ".join(first.reasons) or "no reason given"
    return EXIT_UNDELIVERED, (
        f"{len(request_ids) - len(bad)} of {len(request_ids)} delivered; "
        + ", ".join(f"{n} {status}" for status, n in counts.items())
        + f"; e.g. {first.request_id}: {why}"
    )


def priority_option(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> Priority | None:
    """``--priority low|normal|high`` as a :class:`Priority` (None when not given)."""
    try:
        return None if value is None else parse_priority(value)
    except RequestOptionError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def deadline_option(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    """``--deadline 90s|30m|24h`` in milliseconds (None when not given): a usage error naming
    the option when it is no deadline or out of range."""
    try:
        return None if value is None else parse_deadline(value)
    except RequestOptionError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


PRIORITY_CHOICES = [p.value.lower() for p in Priority]


def fail(ctx: click.Context, code: int, message: str) -> None:
    """End the command with ``code`` after one ``Error:`` line on stderr."""
    click.echo(f"Error: {message}", err=True)
    ctx.exit(code)


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        message = first["msg"].removeprefix("Value error, ")
        if not where:  # a check across several settings names them in its message
            raise click.ClickException(f"invalid settings: {message}") from None
        raise click.ClickException(f"invalid setting {where}: {message}") from None


def request_marker(settings: Settings) -> RequestMarker:
    """The line's origin marker for re-submitted requests; a bad tenants file is one line."""
    try:
        return Gatekeeper.from_settings(settings)
    except TenantsFileError as exc:
        raise click.ClickException(str(exc)) from None


def run(coro: Coroutine[Any, Any, T], settings: Settings) -> T:
    """Run a coroutine; broker trouble becomes a one-line error."""
    try:
        return asyncio.run(coro)
    except (KafkaConnectionError, ConnectionError, OSError) as exc:
        hint = ""
        if settings.kafka_security_protocol == "PLAINTEXT":
            hint = ". Start one with 'assetline broker up' or set KAFKA_BOOTSTRAP."
        raise click.ClickException(connect_failure(settings, exc) + hint) from None
    except KafkaError as exc:
        raise click.ClickException(f"Kafka error: {exc}") from None
