"""Spans exported over OTLP/HTTP to a real receiver on 127.0.0.1 (the ``otel`` extra)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("opentelemetry.sdk")

from streams.otel import OtelTracer, traces_url
from streams.settings import Settings
from streams.trace_context import extract, parse_traceparent
from streams.tracing import CLIENT, CONSUMER, child_span, outgoing, span, tracer_for
from tests.support.otlp_receiver import OtlpReceiver

PRODUCER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_KIND_CONSUMER = 5
SPAN_KIND_CLIENT = 3
STATUS_ERROR = 2


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    server = OtlpReceiver().start()
    try:
        yield server
    finally:
        server.stop()


def test_traces_url_adds_the_otlp_path_once() -> None:
    assert traces_url("http://c:4318") == "http://c:4318/v1/traces"
    assert traces_url("http://c:4318/") == "http://c:4318/v1/traces"
    assert traces_url("http://c:4318/v1/traces") == "http://c:4318/v1/traces"


def test_stage_and_call_spans_reach_the_collector_as_one_trace(receiver: OtlpReceiver) -> None:
    tracer = OtelTracer(receiver.endpoint, "assetline-unit")
    parent = parse_traceparent(PRODUCER)
    with span(tracer, "generate", parent, kind=CONSUMER, attributes={"assetline.stage": "g"}) as s:
        written = extract(outgoing())
        with child_span("chat m1", kind=CLIENT, attributes={"gen_ai.request.model": "m1"}) as c:
            c.set_attributes({"gen_ai.usage.input_tokens": 7})
            c.set_error("provider.timeout")
    assert tracer.flush()
    spans = receiver.wait_for(lambda got: len(got) >= 2, timeout=10)
    by_name = {x.name: x for x in spans}
    stage, call = by_name["generate"], by_name["chat m1"]
    assert stage.trace_id == call.trace_id == TRACE_ID
    assert stage.parent_span_id == "00f067aa0ba902b7"  # the producer's span
    assert call.parent_span_id == stage.span_id
    assert written == s.context  # the next stage's span will be a child of this one
    assert written is not None
    assert written.span_id == stage.span_id
    assert stage.kind == SPAN_KIND_CONSUMER
    assert call.kind == SPAN_KIND_CLIENT
    assert call.attributes == {
        "gen_ai.request.model": "m1",
        "gen_ai.usage.input_tokens": 7,
        "error.type": "provider.timeout",
    }
    assert call.status_code == STATUS_ERROR
    assert stage.service_name == "assetline-unit"
    assert receiver.content_types == ["application/x-protobuf"] * receiver.posts


def test_an_exception_escaping_a_span_marks_it_failed_by_type_only(
    receiver: OtlpReceiver,
) -> None:
    tracer = OtelTracer(receiver.endpoint, "assetline-unit")
    with pytest.raises(ValueError), span(tracer, "deliver", None):
        raise ValueError("sk-secret-in-a-message")
    assert tracer.flush()
    (failed,) = receiver.wait_for(lambda got: len(got) >= 1, timeout=10)
    assert failed.status_code == STATUS_ERROR
    assert failed.attributes == {"error.type": "ValueError"}
    assert "sk-secret" not in repr(failed)


def test_tracer_for_builds_one_exporting_tracer_per_endpoint(receiver: OtlpReceiver) -> None:
    settings = Settings(otel_endpoint=receiver.endpoint)
    tracer = tracer_for(settings)
    assert isinstance(tracer, OtelTracer)
    assert tracer_for(Settings(otel_endpoint=receiver.endpoint)) is tracer
    assert tracer.recording
