"""Spans exported over OTLP/HTTP with OpenTelemetry (the ``otel`` extra).

Imported only by :func:`streams.tracing.tracer_for` when ``ASSETLINE_OTEL_ENDPOINT`` is set, so
a worker without it never loads OpenTelemetry. The provider is this module's own (not the
process-global one), so a host application's tracing setup is neither needed nor disturbed.
Spans are batched and sent from the SDK's thread: a slow collector never blocks the event loop,
and a dead one only drops spans (the SDK logs it).
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState
from opentelemetry.trace.status import Status, StatusCode

from streams.trace_context import Attributes, TraceContext

#: Where OTLP/HTTP takes traces under a collector's base URL.
TRACES_PATH = "/v1/traces"
#: How long finished spans wait to be batched before they are sent.
EXPORT_DELAY_MS = 1000.0

_KINDS = {
    "consumer": SpanKind.CONSUMER,
    "client": SpanKind.CLIENT,
    "producer": SpanKind.PRODUCER,
    "internal": SpanKind.INTERNAL,
}


def traces_url(endpoint: str) -> str:
    """The collector's traces URL: ``endpoint`` plus ``/v1/traces`` unless it ends in it."""
    base = endpoint.rstrip("/")
    return base if base.endswith(TRACES_PATH) else base + TRACES_PATH


def _state(text: str) -> TraceState:
    """A tracestate already validated by :func:`streams.tracing.parse_tracestate`."""
    pairs = [member.split("=", 1) for member in text.split(",") if member]
    return TraceState([(key, value) for key, value in pairs])


class OtelSpan:
    """An OpenTelemetry span seen through :class:`streams.tracing.Span`."""

    __slots__ = ("_span", "context")

    def __init__(self, span: trace.Span, parent: TraceContext) -> None:
        self._span = span
        own = span.get_span_context()
        self.context = TraceContext(
            parent.trace_id, f"{own.span_id:016x}", parent.flags, parent.tracestate
        )

    def set_attributes(self, attributes: Attributes) -> None:
        self._span.set_attributes(dict(attributes))

    def set_error(self, error_type: str) -> None:
        self._span.set_attribute("error.type", error_type)
        self._span.set_status(Status(StatusCode.ERROR))

    def end(self) -> None:
        self._span.end()


class OtelTracer:
    """Starts SDK spans as children of a record's trace context; batches them to ``endpoint``."""

    recording = True

    def __init__(self, endpoint: str, service_name: str) -> None:
        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        exporter = OTLPSpanExporter(endpoint=traces_url(endpoint), timeout=10)
        self.provider.add_span_processor(
            BatchSpanProcessor(exporter, schedule_delay_millis=EXPORT_DELAY_MS)
        )
        self._tracer = self.provider.get_tracer("assetline")

    def start(
        self, name: str, parent: TraceContext, *, kind: str, attributes: Attributes
    ) -> OtelSpan:
        remote = SpanContext(
            trace_id=int(parent.trace_id, 16),
            span_id=int(parent.span_id, 16),
            is_remote=True,
            trace_flags=TraceFlags(parent.flags),
            trace_state=_state(parent.tracestate),
        )
        context = trace.set_span_in_context(NonRecordingSpan(remote))
        span = self._tracer.start_span(
            name, context=context, kind=_KINDS.get(kind, SpanKind.INTERNAL), attributes=attributes
        )
        return OtelSpan(span, parent)

    def flush(self, timeout_ms: int = 5000) -> bool:
        """Send every finished span now (tests, shutdown)."""
        return self.provider.force_flush(timeout_ms)
