"""Spans around stage events and provider calls; the trace context records carry on.

Each stage handling an event is a span (:func:`span`), child of the event's ``traceparent``
(:mod:`streams.trace_context`): the records it writes (:func:`outgoing`) carry the event's trace
id and the stage's own span id, so the hops of a request form one trace whether or not anything
exports spans.

Exporting is optional: with the ``otel`` extra installed and ``ASSETLINE_OTEL_ENDPOINT`` set,
:func:`tracer_for` returns an OpenTelemetry tracer (:mod:`streams.otel`) that sends the stage
spans, and those made with :func:`child_span` (provider calls), over OTLP/HTTP. Otherwise the
tracer is :data:`LOCAL`: span ids are made locally, nothing is imported or recorded.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Protocol

from streams.trace_context import Attributes, Headers, TraceContext, new_trace, with_trace

if TYPE_CHECKING:
    from streams.settings import Settings

log = logging.getLogger(__name__)


# --- spans ------------------------------------------------------------------------------------


class Span(Protocol):
    """A span being recorded (or not): ``context`` is what records written under it carry."""

    @property
    def context(self) -> TraceContext: ...

    def set_attributes(self, attributes: Attributes) -> None: ...

    def set_error(self, error_type: str) -> None:
        """Mark the span failed; ``error_type`` is a code or an exception type, never a text
        that could quote a secret or a prompt."""
        ...

    def end(self) -> None: ...


class Tracer(Protocol):
    """Starts spans: :data:`LOCAL` (ids only) or :class:`streams.otel.OtelTracer`."""

    @property
    def recording(self) -> bool: ...

    def start(
        self, name: str, parent: TraceContext, *, kind: str, attributes: Attributes
    ) -> Span: ...


class _LocalSpan:
    """A span that only has an id: what records carry when nothing exports spans."""

    __slots__ = ("context",)

    def __init__(self, context: TraceContext) -> None:
        self.context = context

    def set_attributes(self, attributes: Attributes) -> None:
        return None

    def set_error(self, error_type: str) -> None:
        return None

    def end(self) -> None:
        return None


class _LocalTracer:
    recording = False

    def start(self, name: str, parent: TraceContext, *, kind: str, attributes: Attributes) -> Span:
        return _LocalSpan(parent.child())


#: The tracer when spans are not exported: it costs one random span id per stage event.
LOCAL: Final[Tracer] = _LocalTracer()

#: Span kinds (OpenTelemetry's names); the OTel tracer maps them.
CONSUMER: Final = "consumer"
CLIENT: Final = "client"
INTERNAL: Final = "internal"


@dataclass(frozen=True, slots=True)
class _Current:
    tracer: Tracer
    span: Span


_current: contextvars.ContextVar[_Current | None] = contextvars.ContextVar(
    "assetline_trace", default=None
)


def current_context() -> TraceContext | None:
    """The context of the span this task runs in (a stage's, while it handles an event)."""
    current = _current.get()
    return None if current is None else current.span.context


def outgoing(
    headers: Iterable[tuple[str, bytes]] | None = None, context: TraceContext | None = None
) -> Headers:
    """Headers for a record about to be written: ``headers`` with the trace context of
    ``context``, else of the current span, else a new trace (a record is never without one)."""
    context = context or current_context() or new_trace()
    return with_trace(headers, context)


@contextmanager
def span(
    tracer: Tracer,
    name: str,
    parent: TraceContext | None,
    *,
    kind: str = INTERNAL,
    attributes: Attributes | None = None,
) -> Iterator[Span]:
    """Run the body as a span, child of ``parent`` (a new trace when None); records written
    in the body (:func:`outgoing`) carry its context. An escaping exception marks it failed
    with the exception's type only."""
    start = parent or new_trace()
    opened = tracer.start(name, start, kind=kind, attributes=attributes or {})
    token = _current.set(_Current(tracer, opened))
    try:
        yield opened
    except BaseException as exc:
        opened.set_error(type(exc).__name__)
        raise
    finally:
        _current.reset(token)
        opened.end()


class _Unrecorded:
    """The span :func:`child_span` yields when nothing records: every call does nothing."""

    __slots__ = ()

    @property
    def context(self) -> TraceContext:
        context = current_context()
        return context if context is not None else new_trace()

    def set_attributes(self, attributes: Attributes) -> None:
        return None

    def set_error(self, error_type: str) -> None:
        return None

    def end(self) -> None:
        return None


_UNRECORDED: Final = _Unrecorded()


@contextmanager
def child_span(
    name: str, *, kind: str = INTERNAL, attributes: Attributes | None = None
) -> Iterator[Span]:
    """A span under the current one when spans are exported; else a no-op costing nothing.

    For work inside a stage worth its own span (a provider call): it needs no tracer passed
    down, the stage's span knows it.
    """
    current = _current.get()
    if current is None or not current.tracer.recording:
        yield _UNRECORDED
        return
    with span(current.tracer, name, current.span.context, kind=kind, attributes=attributes) as s:
        yield s


# --- choosing the tracer -----------------------------------------------------------------------

_tracers: dict[tuple[str, str], Tracer] = {}


def tracer_for(settings: Settings) -> Tracer:
    """:data:`LOCAL` unless ``otel_endpoint`` is set and the ``otel`` extra is installed.

    One exporting tracer per endpoint and service name in a process (tests build many lines).
    Without the endpoint nothing of OpenTelemetry is imported.
    """
    endpoint = settings.otel_endpoint
    if not endpoint:
        return LOCAL
    key = (endpoint, settings.otel_service_name)
    tracer = _tracers.get(key)
    if tracer is None:
        try:
            from streams.otel import OtelTracer
        except ImportError as exc:
            log.warning(
                "ASSETLINE_OTEL_ENDPOINT is set but the 'otel' extra is not installed (%s); "
                "no spans are exported (pip install 'assetline[otel]')",
                exc,
            )
            tracer = LOCAL
        else:
            tracer = OtelTracer(endpoint, settings.otel_service_name)
        _tracers[key] = tracer
    return tracer
