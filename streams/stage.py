"""What every stage agent does around its pure function: decode, time, dead-letter, send.

Keeping this here keeps each agent a short ``async for`` loop over its domain function.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from streams.codecs import AvroCodec, CodecError, UnknownSchemaIdError
from streams.deadletter import deadletter_headers

if TYPE_CHECKING:
    from streams.app import Line

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)


def message_headers(message: Any) -> list[tuple[str, bytes]]:
    """Faust hands headers over as a list of pairs or a mapping, depending on the path."""
    headers = message.headers or ()
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers)


class StageIO:
    """Per-stage helpers bound to a line and a stable stage id (used in logs and metrics)."""

    def __init__(self, line: Line, stage: str) -> None:
        self.line = line
        self.stage = stage
        self._metrics = line.metrics

    @asynccontextmanager
    async def handling(self, event: Any) -> AsyncIterator[None]:
        """Time one event; an unexpected exception parks it on the dead-letter topic.

        A bug triggered by one odd input must not stop the agent for every later input;
        the event is kept (with the exception in its headers) for a person to look at.
        """
        self._metrics.events_in.labels(self.stage).inc()
        start = time.perf_counter()
        try:
            yield
        except Exception as exc:
            log.exception("%s: unexpected error; dead-lettering the event", self.stage)
            await self.dead_letter(event, f"{self.stage}.crashed", f"{type(exc).__name__}: {exc}")
        finally:
            self._metrics.seconds.labels(self.stage).observe(time.perf_counter() - start)

    async def decode(self, codec: AvroCodec[M], event: Any) -> M | None:
        """The record, or ``None`` after parking the message on the dead-letter topic.

        Decoding is synchronous and reads only cached schemas; a Confluent id not seen yet is
        fetched from the registry here, where awaiting is possible, then decoded once more.
        """
        value = event.message.value or b""
        headers = message_headers(event.message)
        try:
            try:
                return codec.decode(value, headers)
            except UnknownSchemaIdError as exc:
                resolver = self.line.codecs.resolver
                if resolver is None:
                    raise
                await resolver.ensure_known(exc.schema_id)
                return codec.decode(value, headers)
        except CodecError as exc:
            await self.dead_letter(event, exc.code, str(exc))
            return None

    async def dead_letter(self, event: Any, code: str, reason: str) -> None:
        message = event.message
        self._metrics.errors.labels(self.stage, code).inc()
        log.warning(
            "%s: dead-lettering %s[%s]@%s: %s",
            self.stage,
            message.topic,
            message.partition,
            message.offset,
            reason,
        )
        headers = deadletter_headers(
            stage=self.stage,
            code=code,
            reason=reason,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            original=message_headers(message),
        )
        await self.line.topics.deadletter.send(
            key=message.key, value=message.value, headers=headers
        )
        self._metrics.events_out.labels(self.stage, "deadletter").inc()

    async def send(self, topic: Any, key: str, value: bytes, output: str) -> None:
        await topic.send(key=key.encode("utf-8"), value=value)
        self._metrics.events_out.labels(self.stage, output).inc()
