"""W3C Trace Context (https://www.w3.org/TR/trace-context/) in Kafka headers: parse, make, carry.

Every record the line writes carries ``traceparent`` (and ``tracestate`` when there is one): the
producer's, when it sent a valid one, else one the first stage (or the SDK) made. Headers come
from anyone who can write to ``.requests``, so parsing is strict and bounded: a malformed
``traceparent`` yields None (the caller starts a new trace), never an error. Trace headers are
not covered by the request signature (streams/signing.py signs the value only), so adding or
replacing them never breaks a signature check. Spans: :mod:`streams.tracing`.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Final

TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"
#: The only version this parser accepts: the one W3C Trace Context Level 1 and 2 define.
VERSION: Final = "00"
#: trace-flags bit: the caller may have recorded its span.
SAMPLED: Final = 0x01
#: A tracestate longer than this is cut member by member (W3C: propagate at least 512).
MAX_TRACESTATE_CHARS: Final = 512
#: W3C: at most 32 list members.
MAX_TRACESTATE_MEMBERS: Final = 32
#: A tracestate member longer than this is the first to go when the whole is too long.
LONG_TRACESTATE_MEMBER: Final = 128
#: Raw header bytes read at most (a longer tracestate header is refused, not scanned).
_MAX_TRACESTATE_HEADER: Final = 8192

_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
_KEY = re.compile(
    r"[a-z][a-z0-9_\-*/]{0,255}|[a-z0-9][a-z0-9_\-*/]{0,240}@[a-z][a-z0-9_\-*/]{0,13}"
)
# printable ASCII but ',' and '=', at most 256, not ending in a space
_VALUE = re.compile(r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
_ZERO_TRACE: Final = "0" * 32
_ZERO_SPAN: Final = "0" * 16

#: Span and attribute values the tracers accept (what OpenTelemetry accepts).
AttributeValue = str | bool | int | float
Attributes = Mapping[str, AttributeValue]
Headers = list[tuple[str, bytes]]


@dataclass(frozen=True, slots=True)
class TraceContext:
    """One position in a trace: ``span_id`` is the span that wrote (or will write) a record."""

    trace_id: str
    span_id: str
    flags: int = SAMPLED
    tracestate: str = ""

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)

    @property
    def traceparent(self) -> str:
        return f"{VERSION}-{self.trace_id}-{self.span_id}-{self.flags:02x}"

    def child(self, span_id: str | None = None) -> TraceContext:
        """The same trace, one span further down (a new span id unless given)."""
        return replace(self, span_id=span_id or new_span_id())

    def headers(self) -> Headers:
        out = [(TRACEPARENT, self.traceparent.encode("ascii"))]
        if self.tracestate:
            out.append((TRACESTATE, self.tracestate.encode("ascii")))
        return out


def new_trace_id() -> str:
    """32 random hex digits, never all zeros. The module-level ``random`` (uniqueness, not
    secrecy, is what W3C asks) is re-seeded in a forked child, so two processes never share
    a sequence of ids."""
    while True:
        value = f"{random.getrandbits(128):032x}"
        if value != _ZERO_TRACE:
            return value


def new_span_id() -> str:
    while True:
        value = f"{random.getrandbits(64):016x}"
        if value != _ZERO_SPAN:
            return value


def new_trace(*, sampled: bool = True) -> TraceContext:
    """A new trace, as the first stage (or the SDK) starts it when nobody sent one."""
    return TraceContext(new_trace_id(), new_span_id(), SAMPLED if sampled else 0)


def _text(value: bytes | str, limit: int) -> str | None:
    """ASCII text of a header value no longer than ``limit``, else None."""
    if len(value) > limit:
        return None
    if isinstance(value, bytes):
        try:
            return value.decode("ascii")
        except UnicodeDecodeError:
            return None
    return value if value.isascii() else None


def parse_traceparent(value: bytes | str | None) -> TraceContext | None:
    """The context a ``traceparent`` value names, or None when it is not a valid one.

    Strict W3C version 00: exactly ``00-<32 hex>-<16 hex>-<2 hex>``, lower-case, neither id all
    zeros. Other versions are refused too (replaced by a new trace): none is defined yet, and
    a later one could mean anything. Only the sampled flag is carried on (W3C: unknown flags
    are not propagated).
    """
    if value is None:
        return None
    text = _text(value, 55)
    if text is None:
        return None
    match = _TRACEPARENT.fullmatch(text)
    if match is None:
        return None
    trace_id, span_id, flags = match.groups()
    if trace_id == _ZERO_TRACE or span_id == _ZERO_SPAN:
        return None
    return TraceContext(trace_id, span_id, int(flags, 16) & SAMPLED)


def parse_tracestate(values: Sequence[bytes | str]) -> str:
    """The ``tracestate`` to carry on, from every such header (joined as HTTP would), or "".

    Invalid (a malformed member, a repeated key, more than 32 members, non-ASCII): "" - W3C
    says not to propagate a tracestate one cannot parse. Valid but over 512 characters:
    members over 128 characters are dropped first, then members from the end, as W3C advises.
    """
    parts: list[str] = []
    size = 0
    for value in values:
        text = _text(value, _MAX_TRACESTATE_HEADER - size)
        if text is None:
            return ""
        size += len(text)
        parts.append(text)
    members = [m.strip(" \t") for m in ",".join(parts).split(",")]
    members = [m for m in members if m]  # W3C: empty members are allowed and ignored
    if len(members) > MAX_TRACESTATE_MEMBERS:
        return ""
    keys: set[str] = set()
    for member in members:
        key, eq, val = member.partition("=")
        if not eq or _KEY.fullmatch(key) is None or _VALUE.fullmatch(val) is None:
            return ""
        if key in keys:
            return ""
        keys.add(key)
    if len(",".join(members)) > MAX_TRACESTATE_CHARS:
        members = [m for m in members if len(m) <= LONG_TRACESTATE_MEMBER]
        while members and len(",".join(members)) > MAX_TRACESTATE_CHARS:
            members.pop()
    return ",".join(members)


def extract(headers: Iterable[tuple[str, bytes | None]] | None) -> TraceContext | None:
    """The trace context in Kafka headers, or None (absent, malformed, or given twice).

    Header names match case-insensitively. Two ``traceparent`` headers are refused: nobody
    can tell which one the producer meant.
    """
    parents: list[bytes] = []
    states: list[bytes] = []
    for key, value in headers or ():
        if not isinstance(key, str) or value is None:
            continue
        name = key.lower()
        if name == TRACEPARENT:
            parents.append(value)
        elif name == TRACESTATE:
            states.append(value)
    if len(parents) != 1:
        return None
    context = parse_traceparent(parents[0])
    if context is None:
        return None
    if states:
        context = replace(context, tracestate=parse_tracestate(states))
    return context


def without_trace(headers: Iterable[tuple[str, bytes]] | None) -> Headers:
    """Headers minus any ``traceparent``/``tracestate`` (another record's, or junk)."""
    return [(k, v) for k, v in headers or () if k.lower() not in (TRACEPARENT, TRACESTATE)]


def with_trace(headers: Iterable[tuple[str, bytes]] | None, context: TraceContext) -> Headers:
    """``headers`` carrying ``context`` instead of whatever trace headers they had."""
    return without_trace(headers) + context.headers()
