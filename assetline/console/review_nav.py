"""Where a reviewer goes next: the next waiting item in the queue's filtered order after a
decision, and the links that carry the filters (pure functions; the pages hold the state)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from urllib.parse import quote, urlencode


def next_waiting(order: Sequence[str], current: str, waiting: Callable[[str], bool]) -> str | None:
    """The first item after ``current`` in ``order`` that still waits, wrapping round to the
    ones before it (skipped, not decided), or None when nothing in ``order`` waits."""
    at = order.index(current) if current in order else -1
    for request_id in [*order[at + 1 :], *order[: max(at, 0)]]:
        if request_id != current and waiting(request_id):
            return request_id
    return None


def chosen_in(values: Mapping[str, object], names: Sequence[str]) -> dict[str, str]:
    """The filters ``values`` sets (non-empty strings), in the order of ``names``."""
    return {n: v for n in names if isinstance(v := values.get(n), str) and v}


def with_query(path: str, query: Mapping[str, str | int]) -> str:
    return f"{path}?{urlencode(query)}" if query else path


def item_link(request_id: str, chosen: Mapping[str, str]) -> str:
    """An item's page, keeping the queue's filters in its query."""
    return with_query(f"/review/item/{quote(request_id, safe='')}", chosen)


def queue_link(chosen: Mapping[str, str], page: int = 1) -> str:
    """The queue with these filters (always with a query, so it is never the remembered one)."""
    return "/review?" + urlencode({**chosen, "page": page})
