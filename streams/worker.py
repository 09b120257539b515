"""Run a worker: create the topics, build the line, hand it to Faust's worker."""

from __future__ import annotations

import asyncio
from typing import Any

from streams.settings import Settings
from streams.topics import ensure_topics, line_topic_specs


def settings_env(settings: Settings) -> dict[str, str]:
    """``ASSETLINE_*`` variables that rebuild ``settings`` in another process."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump(mode="json").items():
        key = f"ASSETLINE_{name.upper()}"
        # Tuples (stages) are comma-separated, as ASSETLINE_STAGES is parsed.
        env[key] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
    return env


def run_worker(settings: Settings) -> None:
    """Blocks until the worker is stopped (SIGINT/SIGTERM)."""
    import faust

    from streams.app import create_line

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(ensure_topics(settings.kafka_bootstrap, line_topic_specs(settings)))
    line = create_line(settings)
    options: dict[str, Any] = {"loglevel": settings.log_level, "quiet": True, "loop": loop}
    worker = faust.Worker(line.app, **options)
    worker.execute_from_commandline()
