"""Shared CLI plumbing: settings from the environment, friendly errors, asyncio entry."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

import click
from aiokafka.errors import KafkaConnectionError, KafkaError
from pydantic import ValidationError

from streams.settings import Settings

T = TypeVar("T")


def load_settings(**overrides: Any) -> Settings:
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise click.ClickException(f"invalid setting {where}: {first['msg']}") from None


def run(coro: Coroutine[Any, Any, T], settings: Settings) -> T:
    """Run a coroutine; broker trouble becomes a one-line error."""
    try:
        return asyncio.run(coro)
    except (KafkaConnectionError, ConnectionError, OSError) as exc:
        raise click.ClickException(
            f"cannot reach Kafka at {settings.kafka_bootstrap}: {exc}. "
            "Start one with 'assetline broker up' or set KAFKA_BOOTSTRAP."
        ) from None
    except KafkaError as exc:
        raise click.ClickException(f"Kafka error: {exc}") from None
