"""Run a worker: create the topics, build the line, hand it to Faust's worker."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import SecretStr

from streams.settings import Settings
from streams.topics import ensure_topics, line_topic_specs


def settings_env(settings: Settings) -> dict[str, str]:
    """``ASSETLINE_*`` variables that rebuild ``settings`` in another process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        key = f"ASSETLINE_{name.upper()}"
        if value is None:
            continue  # unset optional knob: the child's default is None too
        if isinstance(value, list):  # tuples (stages) are comma-separated, as parsed
            env[key] = ",".join(map(str, value))
        elif isinstance(value, dict):  # JSON, as pydantic-settings parses complex fields
            env[key] = json.dumps(_revealed(getattr(settings, name)))
        else:
            env[key] = str(value)
    return env


def _revealed(mapping: dict[str, Any]) -> dict[str, Any]:
    """Secrets in clear, for the child process's environment only (never logged)."""
    return {k: v.get_secret_value() if isinstance(v, SecretStr) else v for k, v in mapping.items()}


def run_worker(settings: Settings) -> None:
    """Blocks until the worker is stopped (SIGINT/SIGTERM)."""
    import faust

    from streams.app import create_line

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    # The line first: it loads every configuration file, so a mistake there is reported (one
    # line, ConfigError) before anything talks to Kafka or a topic is created.
    line = create_line(settings)
    loop.run_until_complete(ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings)))
    if settings.schema_registry_url:  # Confluent writers need their schema ids before starting
        from streams.registry.registration import register_line_schemas

        loop.run_until_complete(register_line_schemas(line))
    options: dict[str, Any] = {"loglevel": settings.log_level, "quiet": True, "loop": loop}
    worker = faust.Worker(line.app, **options)
    worker.execute_from_commandline()
