"""Dead-letter routing: a message a stage cannot process is parked, never dropped.

The dead-letter record keeps the original key, value and headers, and adds headers that say
what went wrong and where the message came from, so it can be inspected and re-driven.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

HEADER_PREFIX = "assetline.dlq."


def deadletter_headers(
    *,
    stage: str,
    code: str,
    reason: str,
    topic: str,
    partition: int,
    offset: int,
    original: Iterable[tuple[str, bytes]] = (),
    now: datetime | None = None,
) -> list[tuple[str, bytes]]:
    """Original headers first, then ours (replacing any earlier dead-letter headers)."""
    kept = [(k, v) for k, v in original if not k.startswith(HEADER_PREFIX)]
    when = (now or datetime.now(UTC)).isoformat(timespec="milliseconds")
    ours = {
        "stage": stage,
        "error.code": code,
        "error.reason": reason[:2000],
        "source.topic": topic,
        "source.partition": str(partition),
        "source.offset": str(offset),
        "time": when,
    }
    return kept + [(HEADER_PREFIX + k, v.encode("utf-8")) for k, v in ours.items()]


def header_map(headers: Iterable[tuple[str, bytes]] | None) -> dict[str, str]:
    """Headers as text, for reading dead-letter reasons back (last one wins)."""
    return {k: v.decode("utf-8", "replace") for k, v in headers or ()}
