"""A Faust table whose changelog records carry the writer's trace, and which remembers it.

An item that waits in a table (a review item) is settled later by another event (a person's
decision) that comes from outside the line and knows nothing of the request's trace. The
table's changelog records carry the trace context of the span that wrote them
(:func:`streams.tracing.outgoing`), and the table keeps each key's last one, from its own
writes and from the changelog when it recovers after a restart, so the settling event's span
can join the request's trace (:meth:`TracedTable.trace_of`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

import faust

from streams.trace_context import TraceContext, extract
from streams.tracing import current_context, outgoing


class TracedTable(faust.Table[bytes, bytes]):
    """``faust.Table`` plus trace headers on its changelog and :meth:`trace_of` per key."""

    #: False for a table whose records only need to carry the trace (nothing settles them
    #: later): no per-key memory then.
    remember_traces: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._traces: dict[bytes, TraceContext] = {}

    def trace_of(self, key: bytes) -> TraceContext | None:
        """The trace context of the span that last wrote ``key``, if known."""
        return self._traces.get(key)

    def send_changelog(
        self,
        partition: int | None,
        key: Any,
        value: Any,
        key_serializer: Any = None,
        value_serializer: Any = None,
    ) -> Any:
        context = current_context()
        if self.remember_traces and context is not None and isinstance(key, bytes):
            self._traces[key] = context
        return self.changelog_topic.send_soon(
            key=key,
            value=value,
            partition=partition,
            headers=outgoing(),
            key_serializer=key_serializer or self.key_serializer,
            value_serializer=value_serializer or self.value_serializer,
            callback=self._on_changelog_sent,
            eager_partitioning=True,  # the partition is known when the callback runs
        )

    def apply_changelog_batch(self, batch: Iterable[Any]) -> None:
        """Recovery: remember each key's trace from the records, then apply them."""
        events = list(batch)
        for event in events if self.remember_traces else ():
            message = event.message
            if not isinstance(message.key, bytes):
                continue
            headers = message.headers or ()
            if isinstance(headers, dict):  # Faust hands headers over either way
                headers = list(headers.items())
            context = extract(headers)
            if context is None or message.value is None:
                self._traces.pop(message.key, None)
            else:
                self._traces[message.key] = context
        super().apply_changelog_batch(events)
