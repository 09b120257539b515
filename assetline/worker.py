"""The composition root: a line is the runtime plus the stages; a worker runs one.

``build_line`` is the only place that joins :mod:`streams` (which knows no stage) with the
stage registry of :mod:`agents`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from agents.stages import installers_for
from streams.app import Line, create_line
from streams.json_logs import JsonFormatter, use_json_logs
from streams.log_limits import install_log_limits
from streams.registry.registration import register_line_schemas
from streams.settings import Settings
from streams.topics import ensure_topics, line_topic_specs


def build_line(settings: Settings, *, registry: CollectorRegistry | None = None) -> Line:
    """The Faust app with the stages named in ``settings.stages`` installed."""
    return create_line(settings, installers_for(settings.stages), registry=registry)


class _Worker(faust.Worker):
    """Faust's worker with :mod:`streams.log_limits` on its log handlers (quiet outages)."""

    def __init__(
        self, *args: Any, log_repeat_interval_s: float, log_json: bool = False, **kwargs: Any
    ) -> None:
        self._log_repeat_interval_s = log_repeat_interval_s
        self._log_json = log_json
        super().__init__(*args, **kwargs)
        # Faust's terminal spinner, shown at log levels of WARN and above (the line's default),
        # sets the root logger to DEBUG so that every record turns it: every debug line of
        # aiokafka and Faust was then built, passed through the log limiter and dropped -
        # 12% of a busy worker's CPU in a py-spy profile (issue 16). A service has no spinner.
        self.spinner = None

    def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
        # mode's hook, called once the root handlers exist (they are replaced before it).
        super().on_setup_root_logger(logger, level)
        if self._log_json:  # ASSETLINE_LOG_FORMAT=json: one JSON object per line
            use_json_logs(logger)
        install_log_limits(logger, interval_s=self._log_repeat_interval_s, loop=self.loop)

    async def _sentinel_task(self) -> None:
        # mode runs this on the loop after every task has been gathered, before closing it:
        # its 1 s sleep made every stopped worker exit a second late (each restart, deploy and
        # test). A few turns of the loop let the last close callbacks of transports run.
        await asyncio.sleep(0.1)


def run_worker(settings: Settings) -> None:
    """Blocks until the worker is stopped (SIGINT/SIGTERM)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    if settings.log_format == "json" and not logging.root.handlers:
        # Lines logged while the line is built, before mode sets up (and replaces) the root
        # handlers, are JSON too.
        early = logging.StreamHandler()
        early.setFormatter(JsonFormatter())
        logging.root.addHandler(early)
    # The line first: it loads every configuration file, so a mistake there is reported (one
    # line, ConfigError) before anything talks to Kafka or a topic is created.
    line = build_line(settings)
    loop.run_until_complete(ensure_topics(settings, line_topic_specs(settings)))
    if settings.schema_registry_url:  # Confluent writers need their schema ids before starting
        loop.run_until_complete(
            register_line_schemas(line.codecs, line.topics.names, settings.subject_strategy)
        )
    options: dict[str, Any] = {"loglevel": settings.log_level, "quiet": True, "loop": loop}
    worker = _Worker(
        line.app,
        log_repeat_interval_s=settings.log_repeat_interval_s,
        log_json=settings.log_format == "json",
        **options,
    )
    freeze_startup_objects()
    worker.execute_from_commandline()


def freeze_startup_objects() -> None:
    """Keep what the start built (modules, schemas, the line: 150,000 objects) out of every
    later full garbage collection.

    Those collections scan every tracked object, and a busy worker runs them while it takes a
    backlog in: measured in a worker taking 10,000 requests (bench.providers priority, issue
    16), full collections of 0.12-0.26 s, with the stage's intake stopped meanwhile; frozen,
    0.04-0.08 s. What is frozen is never freed, so the garbage is collected first.
    """
    gc.collect()
    gc.freeze()
