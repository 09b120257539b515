"""Deliveries put off for a full destination: their headers and when they come due (pure).

A destination with ``deliver_lane_max_waiting`` deliveries already waiting for its in-flight
room gets its next ones written to ``.deliver.deferred`` (same key, same value bytes, the
original headers plus the ones below) instead of waiting in the worker's memory, where a dead
destination filled the deliver stage's whole waiting room and stopped it for every tenant
(issue 16). The deliver stage takes the topic back and feeds each record, once due, to the
same pool as ``.approved``; a destination still over its bound defers it again, one count
further, so the wait doubles: ``base_s``, ``2 * base_s``, ... up to ``max_s``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

#: The topic the record was first written to (``.approved``, or ``.rejected`` for a record
#: that followed a deferred one of its request): what the deliver stage handles it as.
FROM_HEADER: Final = "assetline.deferred.from"
#: When the record is due, in ms since the epoch (decimal ASCII).
DUE_HEADER: Final = "assetline.deferred.due_ms"
#: How many times the record was deferred (1 the first time).
COUNT_HEADER: Final = "assetline.deferred.count"
#: The destination it waited for (a destinations-file name: bounded, says who is slow).
DESTINATION_HEADER: Final = "assetline.deferred.destination"
_OURS: Final = frozenset({FROM_HEADER, DUE_HEADER, COUNT_HEADER, DESTINATION_HEADER})

Headers = Iterable[tuple[str, bytes | None]]


@dataclass(frozen=True, slots=True)
class Deferral:
    """What a record's deferral headers say; ``count`` 0 for a record never deferred."""

    source: str | None = None
    due_ms: int | None = None
    count: int = 0
    destination: str | None = None


def deferral_of(headers: Headers | None) -> Deferral:
    """The record's deferral, read leniently: a missing or damaged header reads as absent
    (the record is then due at once, as a first deferral), never as an error."""
    found: dict[str, str] = {}
    for name, value in headers or ():
        if name in _OURS and value is not None:
            found[name] = value.decode("utf-8", "replace")
    return Deferral(
        source=found.get(FROM_HEADER) or None,
        due_ms=_natural(found.get(DUE_HEADER)),
        count=_natural(found.get(COUNT_HEADER)) or 0,
        destination=found.get(DESTINATION_HEADER) or None,
    )


def defer_delay_s(count: int, base_s: float, max_s: float) -> float:
    """How long a record deferred for the ``count``-th time (from 1) waits: doubling from
    ``base_s``, never above ``max_s``."""
    if count <= 1:
        return min(base_s, max_s)
    exponent = min(count - 1, 62)  # 2.0 ** 1024 overflows; the cap is reached long before
    return min(base_s * 2.0**exponent, max_s)


def deferred_headers(
    headers: Headers | None,
    *,
    source: str,
    destination: str,
    due_ms: int,
    count: int,
) -> list[tuple[str, bytes]]:
    """The original headers (trace context, schema id...) and this deferral's; the previous
    deferral's are replaced, so a record deferred five times carries one set."""
    kept = [
        (name, value) for name, value in headers or () if name not in _OURS and value is not None
    ]
    return [
        *kept,
        (FROM_HEADER, source.encode("utf-8")),
        (DESTINATION_HEADER, destination.encode("utf-8")),
        (DUE_HEADER, str(due_ms).encode("ascii")),
        (COUNT_HEADER, str(count).encode("ascii")),
    ]


def due_at_s(deferral: Deferral, now_s: float, max_s: float) -> float:
    """When to take a deferred record back (seconds since the epoch): its due time, but never
    later than ``max_s`` from now (a clock that jumped, or a forged header, must not keep a
    record waiting for ever) and now when it says nothing."""
    if deferral.due_ms is None:
        return now_s
    return min(deferral.due_ms / 1000.0, now_s + max_s)


def _natural(text: str | None) -> int | None:
    if text is None or not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)
