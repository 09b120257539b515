"""Stage spans and outgoing trace headers without an exporter: ids only, nothing imported."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from streams.settings import Settings
from streams.trace_context import TRACEPARENT, TraceContext, extract, parse_traceparent
from streams.tracing import (
    LOCAL,
    child_span,
    current_context,
    outgoing,
    span,
    tracer_for,
)

PRODUCER = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_records_written_in_a_stage_span_carry_its_trace_and_its_own_span_id() -> None:
    parent = parse_traceparent(PRODUCER)
    with span(LOCAL, "generate", parent) as stage:
        first = extract(outgoing([("x", b"y")]))
        second = extract(outgoing())
    assert first is not None
    assert first == second == stage.context
    assert first.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert first.span_id != "00f067aa0ba902b7"  # the stage's span, a child of the producer's
    assert current_context() is None  # the span ends with the block


def test_a_stage_span_without_a_parent_starts_a_trace_and_outside_spans_each_record_does() -> None:
    with span(LOCAL, "generate", None) as stage:
        assert extract(outgoing()) == stage.context
    lone = {extract(outgoing()) for _ in range(5)}
    assert None not in lone
    assert len({c.trace_id for c in lone if c is not None}) == 5


def test_outgoing_replaces_a_hostile_trace_header_it_is_given() -> None:
    with span(LOCAL, "validate", parse_traceparent(PRODUCER)) as stage:
        headers = outgoing([(TRACEPARENT, b"junk" * 1000), ("TraceState", b"=,=")])
    assert extract(headers) == stage.context
    assert [k for k, _ in headers] == [TRACEPARENT]


def test_spans_nest_and_unwind_in_order_even_on_errors() -> None:
    seen = []

    def fail_inside(parent: TraceContext) -> None:
        with span(LOCAL, "inner", parent) as inner:
            seen.append((current_context(), inner.context))
            raise RuntimeError("boom")

    with span(LOCAL, "outer", None) as outer:
        with pytest.raises(RuntimeError):
            fail_inside(outer.context)
        assert current_context() == outer.context
    assert current_context() is None
    ((during, inner_context),) = seen
    assert during == inner_context
    assert inner_context.trace_id == outer.context.trace_id


def test_child_span_costs_nothing_when_nothing_records() -> None:
    with span(LOCAL, "generate", None) as stage, child_span("chat m", attributes={"a": 1}) as c:
        assert c.context == stage.context  # no span of its own: nothing would read it
        c.set_attributes({"gen_ai.usage.input_tokens": 3})
        c.set_error("provider.timeout")
    with child_span("outside") as lone:
        assert parse_traceparent(lone.context.traceparent) is not None


def test_without_an_endpoint_the_tracer_is_local_and_opentelemetry_is_never_imported() -> None:
    assert tracer_for(Settings()) is LOCAL
    code = textwrap.dedent(
        """
        import sys
        from streams.settings import Settings
        from streams.tracing import tracer_for, span
        import streams.stage_io, agents.inference.routing.router
        tracer = tracer_for(Settings())
        with span(tracer, "generate", None):
            pass
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_an_endpoint_without_the_otel_extra_falls_back_to_local_spans() -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["opentelemetry"] = None  # as if the extra were not installed
        from streams.settings import Settings
        from streams.tracing import LOCAL, tracer_for
        print(tracer_for(Settings(otel_endpoint="http://127.0.0.1:9")) is LOCAL)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "True"
    assert "'otel' extra is not installed" in out.stderr
