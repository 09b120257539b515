"""What every stage agent does around its pure function: decode, time, dead-letter, send.

Keeping this here keeps each agent a short ``async for`` loop over its domain function.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from aiokafka.errors import MessageSizeTooLargeError
from pydantic import BaseModel

from streams.codecs import AvroCodec, CodecError, UnknownSchemaIdError
from streams.dead_letters import dead_letter_record, park_value

if TYPE_CHECKING:
    from streams.app import Line

M = TypeVar("M", bound=BaseModel)
log = logging.getLogger(__name__)

#: Backoff between attempts to write a dead letter: first delay, cap.
DEADLETTER_RETRY_S = (0.5, 30.0)


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
        except MessageSizeTooLargeError as exc:
            # An output derived from this event is over max_message_bytes: say so precisely.
            log.error("%s: an output is too large; dead-lettering the event: %s", self.stage, exc)
            await self.dead_letter(event, f"{self.stage}.output_too_large", str(exc))
        except Exception as exc:
            log.exception("%s: unexpected error; dead-lettering the event", self.stage)
            await self.dead_letter(event, f"{self.stage}.crashed", f"{type(exc).__name__}: {exc}")
        finally:
            self._metrics.seconds.labels(self.stage).observe(time.perf_counter() - start)

    async def decode(
        self,
        codec: AvroCodec[M],
        event: Any,
        *,
        max_bytes: int | None = None,
        too_large: str = "record.too_large",
    ) -> M | None:
        """The record, or ``None`` after parking the message on the dead-letter topic.

        A value over ``max_bytes`` is dead-lettered with code ``too_large`` before decoding:
        every record derived from it must still fit the producer's limit.
        Decoding is synchronous and reads only cached schemas; a Confluent id not seen yet is
        fetched from the registry here, where awaiting is possible, then decoded once more.
        """
        value = event.message.value or b""
        if max_bytes is not None and len(value) > max_bytes:
            reason = f"value is {len(value)} bytes, over the limit of {max_bytes}"
            await self.dead_letter(event, too_large, reason)
            return None
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
        """Park the event's message on the dead-letter topic; returns only once it is written.

        The record is shrunk to fit the producer's limit (value parked in the blob store, see
        :func:`streams.dead_letters.dead_letter_record`). A send that still fails is retried with
        backoff, and the message is held so no offset is committed past it even if this task
        is cancelled: after a restart the event is processed (and dead-lettered) again.
        """
        message = event.message
        self._metrics.errors.labels(self.stage, code).inc()
        record = dead_letter_record(
            stage=self.stage,
            code=code,
            reason=reason,
            topic=message.topic,
            partition=message.partition,
            offset=message.offset,
            key=message.key,
            value=message.value or b"",
            original=message_headers(message),
            limit=self.line.settings.max_message_bytes,
            park=self._park,
            logger=log,
        )
        sent = False
        delay, cap = DEADLETTER_RETRY_S
        try:
            while True:
                try:
                    delivery = await self.line.topics.deadletter.send(
                        key=record.key, value=record.value, headers=record.headers
                    )
                    await delivery  # acknowledged by the broker, not merely queued
                except Exception as exc:
                    self._hold(message)
                    self._metrics.errors.labels(self.stage, "deadletter.send_failed").inc()
                    log.error(
                        "%s: dead letter for %s[%s]@%s not written (%s: %s); the partition "
                        "commits no further; retrying in %.1f s",
                        self.stage,
                        message.topic,
                        message.partition,
                        message.offset,
                        type(exc).__name__,
                        exc,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, cap)
                else:
                    sent = True
                    break
        finally:
            if sent:
                self._release(message)
            else:
                self._hold(message)
        self._metrics.events_out.labels(self.stage, "deadletter").inc()

    def _park(self, value: bytes) -> str:
        return park_value(self.line.blobs, value)

    def _hold(self, message: Any) -> None:
        """Ask the consumer never to acknowledge ``message`` (see SafeConsumer.hold)."""
        hold = getattr(self.line.app.consumer, "hold", None)
        if hold is not None:
            hold(message)

    def _release(self, message: Any) -> None:
        release = getattr(self.line.app.consumer, "release", None)
        if release is not None:
            release(message)

    async def send(
        self,
        topic: Any,
        key: str,
        value: bytes,
        output: str,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        await topic.send(key=key.encode("utf-8"), value=value, headers=headers)
        self._metrics.events_out.labels(self.stage, output).inc()
