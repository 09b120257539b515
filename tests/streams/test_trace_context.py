"""W3C trace context in Kafka headers: strict parsing, hostile inputs replaced, bounded state."""

from __future__ import annotations

import os

import pytest

from streams.trace_context import (
    MAX_TRACESTATE_CHARS,
    SAMPLED,
    TRACEPARENT,
    TRACESTATE,
    TraceContext,
    extract,
    new_trace,
    parse_traceparent,
    parse_tracestate,
    with_trace,
    without_trace,
)

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_a_valid_traceparent_is_read_field_by_field() -> None:
    context = parse_traceparent(VALID.encode())
    assert context == TraceContext(
        "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", SAMPLED, ""
    )
    assert context.traceparent == VALID
    unsampled = parse_traceparent(VALID[:-2] + "00")
    assert unsampled is not None
    assert not unsampled.sampled


def test_flags_other_than_sampled_are_not_carried_on() -> None:
    context = parse_traceparent(VALID[:-2] + "ff")
    assert context is not None
    assert context.flags == SAMPLED
    assert context.traceparent.endswith("-01")


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"00",
        b"junk",
        VALID.upper().encode(),  # W3C: lower-case hex only
        ("01" + VALID[2:]).encode(),  # a version this parser does not know
        ("ff" + VALID[2:]).encode(),  # the forbidden version
        (VALID + "-extra").encode(),  # version 00 has exactly four fields
        (VALID + " ").encode(),
        (" " + VALID).encode(),
        f"00-{'0' * 32}-00f067aa0ba902b7-01".encode(),  # all-zero trace id
        f"00-4bf92f3577b34da6a3ce929d0e0e4736-{'0' * 16}-01".encode(),  # all-zero parent id
        b"00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",  # 31 hex
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01",  # 15 hex
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
        b"00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902bg-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b\u00e9-01".encode(),  # non-ASCII
        b"\xff\xfe" * 30,  # not text at all
        b"00-" + b"a" * 100_000,  # huge: refused by length, never scanned
        (b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\n"),
    ],
)
def test_a_hostile_traceparent_is_refused_never_raised(value: bytes) -> None:
    assert parse_traceparent(value) is None
    assert extract([(TRACEPARENT, value)]) is None


def test_extract_reads_headers_case_insensitively_and_refuses_two_traceparents() -> None:
    assert extract([("TraceParent", VALID.encode())]) == parse_traceparent(VALID)
    other = "00-11111111111111111111111111111111-2222222222222222-01"
    assert extract([(TRACEPARENT, VALID.encode()), (TRACEPARENT, other.encode())]) is None
    assert extract(None) is None
    assert extract([]) is None
    assert extract([(TRACEPARENT, None), ("x", b"y")]) is None  # a header may have no value


def test_tracestate_travels_only_beside_a_valid_traceparent() -> None:
    headers = [(TRACEPARENT, VALID.encode()), (TRACESTATE, b"rojo=00f067aa0ba902b7,congo=t61")]
    context = extract(headers)
    assert context is not None
    assert context.tracestate == "rojo=00f067aa0ba902b7,congo=t61"
    assert extract([(TRACEPARENT, b"junk"), (TRACESTATE, b"rojo=1")]) is None


def test_several_tracestate_headers_join_like_http_and_empty_members_are_dropped() -> None:
    assert parse_tracestate([b"a=1, ,b=2", b" c@vendor=3 "]) == "a=1,b=2,c@vendor=3"


@pytest.mark.parametrize(
    "value",
    [
        b"novalue",
        b"=1",
        b"Upper=1",  # keys are lower-case
        b"a=1,a=2",  # a repeated key
        b"a=x=y",  # '=' in a value
        b"a=x\ty",  # a tab inside a value
        b"a=\x07",  # control characters
        "a=\u00e9".encode(),
        b"a" * 300 + b"=1",  # key too long
        b"a=" + b"v" * 257,  # value too long
        ",".join(f"k{i}=v" for i in range(33)).encode(),  # more than 32 members
        b"x=" + b"y" * 20_000,  # over the raw bound: refused without scanning
    ],
)
def test_an_invalid_tracestate_is_dropped_whole(value: bytes) -> None:
    assert parse_tracestate([value]) == ""
    context = extract([(TRACEPARENT, VALID.encode()), (TRACESTATE, value)])
    assert context is not None  # the traceparent still counts
    assert context.tracestate == ""
    assert [k for k, _ in context.headers()] == [TRACEPARENT]


def test_a_long_tracestate_loses_long_members_first_then_the_last_ones() -> None:
    long_member = "big=" + "x" * 200
    members = [f"k{i}={'v' * 40}" for i in range(15)]  # 15 x 44 chars: 674 with commas
    state = parse_tracestate([",".join([members[0], long_member, *members[1:]]).encode()])
    assert len(state) <= MAX_TRACESTATE_CHARS
    kept = state.split(",")
    assert "big" not in {m.split("=")[0] for m in kept}
    assert kept == members[: len(kept)]  # cut from the end, order kept
    assert len(kept) == 11


def test_new_traces_and_children_are_valid_and_distinct() -> None:
    traces = [new_trace() for _ in range(200)]
    assert len({t.trace_id for t in traces}) == 200
    for trace in traces:
        assert parse_traceparent(trace.traceparent) == trace
        child = trace.child()
        assert child.trace_id == trace.trace_id
        assert child.span_id != trace.span_id
        assert parse_traceparent(child.traceparent) == child
    assert not new_trace(sampled=False).sampled


def test_with_trace_replaces_any_trace_headers_and_keeps_the_rest() -> None:
    context = TraceContext("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1, "a=1")
    headers = [
        ("assetline-signature", b"v1=abc"),
        ("TRACEPARENT", b"junk"),
        (TRACESTATE, b"evil=1"),
        ("x", b"y"),
    ]
    out = with_trace(headers, context)
    assert out == [
        ("assetline-signature", b"v1=abc"),
        ("x", b"y"),
        (TRACEPARENT, VALID.encode()),
        (TRACESTATE, b"a=1"),
    ]
    assert without_trace(out) == [("assetline-signature", b"v1=abc"), ("x", b"y")]


def test_a_forked_process_never_repeats_the_parents_ids() -> None:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: one id, then out without running the parent's cleanup
        os.write(write, new_trace().traceparent.encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = os.read(read, 100).decode()
    os.close(read)
    assert child != new_trace().traceparent
