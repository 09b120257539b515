"""What every stage agent does around its pure function: decode, time, dead-letter, send.

Keeping this here keeps each agent a short ``async for`` loop over its domain function.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Final, TypeVar

from aiokafka.errors import MessageSizeTooLargeError
from pydantic import BaseModel

from streams.acks import acknowledged
from streams.codecs import AvroCodec, CodecError, UnknownSchemaIdError
from streams.dead_letters import dead_letter_record, park_value
from streams.json_logs import request_id_of_key, request_id_var
from streams.kafka_security import kafka_secrets
from streams.redaction import redact, redact_and_truncate
from streams.trace_context import TraceContext, extract
from streams.tracing import CONSUMER, outgoing, span, tracer_for

if TYPE_CHECKING:
    from streams.app import Line

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
log = logging.getLogger(__name__)

#: Backoff between attempts to write a dead letter: first delay, cap.
DEADLETTER_RETRY_S = (0.5, 30.0)

#: Reason code of the FAILED completion that ends a request whose event crashed a stage.
STAGE_CRASHED: Final = "stage.crashed"
#: The crash text in that completion (``<stage>: <Exception>: <text>``) is cut to this length.
MAX_CRASH_MESSAGE: Final = 500
#: ``events_out`` output label counting the crash outcomes a stage emitted.
CRASH_OUTPUT: Final = "crash_completion"
#: ``errors`` code counting crash outcomes that could not be emitted (the dead letter remains).
CRASH_OUTCOME_FAILED: Final = "stage.crash_outcome_failed"

#: Emits the terminal outcome of a crashed event's request, given the crash message; returns
#: False when there was nothing left to emit (say, the request already completed).
CrashOutcome = Callable[[str], Awaitable[bool]]


class CrashGuard:
    """What ends an event's request if handling the event crashes (see :meth:`StageIO.handling`).

    A stage arms it once it knows a request it may complete (decoded, and admitted where that
    applies), and disarms it once the request has been handed on (a re-generation, a review
    item): from then on something else ends the request, and a crash completion would be a
    second one. Unarmed, a crash is only dead-lettered, as for undecodable bytes.
    """

    def __init__(self, on_crash: CrashOutcome | None = None) -> None:
        self.on_crash = on_crash

    def arm(self, on_crash: CrashOutcome) -> None:
        self.on_crash = on_crash

    def disarm(self) -> None:
        self.on_crash = None


def message_headers(message: Any) -> list[tuple[str, bytes]]:
    """Faust hands headers over as a list of pairs or a mapping, depending on the path."""
    headers = message.headers or ()
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers)


def peek(codec: AvroCodec[M], event: Any) -> M | None:
    """The event's record if it decodes from cached schemas, else None; never raises.

    For scheduling an event before its handling (which decodes again, and dead-letters what
    does not decode): it must be cheap and side-effect free, so nothing is fetched here.
    """
    return _peek_with(codec.decode, event)


def peek_fields(codec: AvroCodec[Any], event: Any) -> dict[str, Any] | None:
    """The event's record as plain data (Avro-typed, not validated by the model) if it decodes
    from cached schemas, else None; never raises.

    :func:`peek` for a stage's taking loop, which runs once per event and holds back every
    event behind it: the model's validation was half of ``peek`` (measured in a worker taking
    10,000 requests, issue 16: 24 us of 57 us per event, validation about half of that). What
    is read here only orders the event; its handling decodes and validates it again.
    """
    return _peek_with(codec.decode_dict, event)


def _peek_with(decode: Callable[[bytes, Any], T], event: Any) -> T | None:
    message = getattr(event, "message", None)
    value = getattr(message, "value", None)
    if not value:
        return None
    try:
        return decode(value, message_headers(message))
    except Exception:  # anything undecodable is the handler's to report
        return None


class StageIO:
    """Per-stage helpers bound to a line and a stable stage id (used in logs and metrics)."""

    def __init__(self, line: Line, stage: str) -> None:
        self.line = line
        self.stage = stage
        self._metrics = line.metrics
        self._tracer = tracer_for(line.settings)

    @asynccontextmanager
    async def handling(
        self, event: Any, on_crash: CrashOutcome | None = None, *, trace: TraceContext | None = None
    ) -> AsyncIterator[CrashGuard]:
        """Time one event; an unexpected exception parks it on the dead-letter topic, then
        ends its request through the guard's ``on_crash`` (:class:`CrashGuard`), if armed.

        A bug triggered by one odd input must not stop the agent for every later input;
        the event is kept (with the exception in its headers) for a person to look at, and
        its request still ends in one completion (``stage.crashed``) so nobody waits forever.

        The handling is one span (streams/tracing.py), child of the event's ``traceparent``
        (a new trace when it has none or a malformed one): every record written meanwhile
        carries the trace on. ``trace``, when given, is the parent instead: the request's own
        trace, for an event from outside the line that settles it (a review decision).
        """
        self._metrics.events_in.labels(self.stage).inc()
        in_progress = self._metrics.in_progress.labels(self.stage)
        in_progress.inc()
        start = time.perf_counter()
        guard = CrashGuard(on_crash)
        # Log lines about this event carry its request id (the key of every line record).
        message = getattr(event, "message", None)
        key = getattr(message, "key", None)
        request_token = request_id_var.set(request_id_of_key(key))
        parent = trace or (extract(message_headers(message)) if message is not None else None)
        attributes = self._span_attributes(message)
        try:
            with span(self._tracer, self.stage, parent, kind=CONSUMER, attributes=attributes) as s:
                try:
                    yield guard
                except MessageSizeTooLargeError as exc:
                    # An output derived from this event is over max_message_bytes: say so.
                    log.error(
                        "%s: an output is too large; dead-lettering the event: %s", self.stage, exc
                    )
                    s.set_error(f"{self.stage}.output_too_large")
                    reason = self._describe(exc, with_type=False)
                    await self.dead_letter(event, f"{self.stage}.output_too_large", reason)
                    await self._end_crashed(event, guard, exc)
                except Exception as exc:
                    log.exception("%s: unexpected error; dead-lettering the event", self.stage)
                    s.set_error(type(exc).__name__)
                    await self.dead_letter(event, f"{self.stage}.crashed", self._describe(exc))
                    await self._end_crashed(event, guard, exc)
        finally:
            self._metrics.seconds.labels(self.stage).observe(time.perf_counter() - start)
            in_progress.dec()
            self.handled(event)
            with contextlib.suppress(ValueError):  # closed from another context (finalized)
                request_id_var.reset(request_token)

    def _span_attributes(self, message: Any) -> dict[str, str | int]:
        """What a stage span says about its event: where it came from, which request.

        Empty when spans are not exported (nothing would read it)."""
        if not self._tracer.recording or message is None:
            return {}
        attributes: dict[str, str | int] = {
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.consumer.group.name": self.line.settings.app_id,
            "assetline.stage": self.stage,
        }
        topic, partition, offset = message.topic, message.partition, message.offset
        if isinstance(topic, str):
            attributes["messaging.destination.name"] = topic
        if isinstance(partition, int):
            attributes["messaging.destination.partition.id"] = str(partition)
        if isinstance(offset, int):
            attributes["messaging.kafka.offset"] = offset
        request_id = request_id_of_key(message.key)
        if request_id is not None:
            attributes["assetline.request_id"] = request_id
        return attributes

    def crash_message(self, exc: BaseException) -> str:
        """``<stage>: <Exception>: <text>``, redacted, bounded and valid UTF-8, for a record."""
        text = f"{self.stage}: {self._describe(exc)}"
        return redact_and_truncate(text, self._secrets(), MAX_CRASH_MESSAGE)

    def _secrets(self) -> list[str]:
        settings = self.line.settings
        keys = getattr(settings, "api_keys", None) or {}
        return [secret.get_secret_value() for secret in keys.values()] + kafka_secrets(settings)

    def _describe(self, exc: BaseException, *, with_type: bool = True) -> str:
        """The exception as redacted text that can always be encoded: an exception may quote a
        lone surrogate (undecodable input), which a header or an Avro string would refuse."""
        try:
            text = str(exc)
        except Exception:  # a broken __str__ must not break the dead letter
            text = "<unprintable>"
        if with_type:
            text = f"{type(exc).__name__}: {text}"
        return redact(text.encode("utf-8", "backslashreplace").decode("utf-8"), self._secrets())

    async def _end_crashed(self, event: Any, guard: CrashGuard, exc: BaseException) -> None:
        """Run the armed crash outcome; a failure in it is logged and counted, never raised.

        The dead letter is already written, so nothing is lost if this fails. While it runs
        the event is held: a stage stopped midway commits no offset past it, and after the
        restart the event is dead-lettered and completed again (the ledger keeps one).
        """
        on_crash = guard.on_crash
        if on_crash is None:
            return
        message = event.message
        self._hold(message)
        try:
            emitted = await on_crash(self.crash_message(exc))
        except Exception:
            self._release(message)
            self._metrics.errors.labels(self.stage, CRASH_OUTCOME_FAILED).inc()
            log.exception(
                "%s: the request of the crashed event %s[%s]@%s could not be ended; its dead "
                "letter keeps it for a re-drive",
                self.stage,
                message.topic,
                message.partition,
                message.offset,
            )
            return
        self._release(message)
        if emitted:
            self._metrics.events_out.labels(self.stage, CRASH_OUTPUT).inc()

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
        sent = False
        try:
            # Inside the try: parking awaits the blob store, and a cancellation there must
            # hold the message too.
            record = await dead_letter_record(
                stage=self.stage,
                code=code,
                reason=reason,
                topic=message.topic,
                partition=message.partition,
                offset=message.offset,
                key=message.key,
                value=message.value or b"",
                # the handling span's trace, never a malformed one the event came with
                original=outgoing(message_headers(message)),
                limit=self.line.settings.max_message_bytes,
                park=self._park,
                logger=log,
            )
            await self.send_acknowledged(
                self.line.topics.deadletter,
                message,
                record.key,
                record.value,
                lambda: record.headers,
                what="dead letter",
                code="deadletter.send_failed",
                on_failure=lambda: self._hold(message),
            )
            sent = True
        finally:
            if sent:
                self._release(message)
            else:
                self._hold(message)
        self._metrics.events_out.labels(self.stage, "deadletter").inc()

    async def send_acknowledged(
        self,
        topic: Any,
        message: Any,
        key: bytes | None,
        value: bytes | None,
        headers: Callable[[], Sequence[tuple[str, bytes]]],
        *,
        what: str,
        code: str,
        on_failure: Callable[[], None] | None = None,
    ) -> None:
        """Write a record standing for ``message`` to ``topic`` and return only once the broker
        acknowledged it: a failed send is retried with backoff (:data:`DEADLETTER_RETRY_S`),
        counted as ``code`` and logged, for as long as it takes. For a record whose event is
        acknowledged after it (a dead letter, a deferred delivery): nothing may be lost.
        ``headers`` is asked again for each try (a deferral's due time counts from the write).
        """
        delay, cap = DEADLETTER_RETRY_S
        while True:
            try:
                delivery = await topic.send(key=key, value=value, headers=list(headers()))
                await acknowledged(delivery)  # by the broker, not merely queued
                return
            except Exception as exc:
                if on_failure is not None:
                    on_failure()
                self._metrics.errors.labels(self.stage, code).inc()
                log.error(
                    "%s: %s for %s[%s]@%s not written (%s: %s); the partition commits no "
                    "further; retrying in %.1f s",
                    self.stage,
                    what,
                    message.topic,
                    message.partition,
                    message.offset,
                    type(exc).__name__,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, cap)

    async def _park(self, value: bytes) -> str:
        return await park_value(self.line.blobs, value)

    def _hold(self, message: Any) -> None:
        """Ask the consumer never to acknowledge ``message`` (see SafeConsumer.hold)."""
        hold = getattr(self.line.app.consumer, "hold", None)
        if hold is not None:
            hold(message)

    def handled(self, event: Any) -> None:
        """Tell the consumer a stage saw this event through (see SafeConsumer.handled): only
        such offsets may be committed past. :meth:`handling` does it; an event a stage
        passes on without handling it (a deferred delivery) needs it said."""
        handled = getattr(self.line.app.consumer, "handled", None)
        message = getattr(event, "message", None)
        if handled is not None and message is not None:
            handled(message)

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
        headers = outgoing(headers)  # the trace of the event being handled (streams/tracing.py)
        await topic.send(key=key.encode("utf-8"), value=value, headers=headers)
        self._metrics.events_out.labels(self.stage, output).inc()
