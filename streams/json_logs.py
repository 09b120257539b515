"""Structured logs: one JSON object per line when ``log_format=json``.

Each line has ``time`` (UTC, ISO 8601 with milliseconds), ``level``, ``logger`` and
``message``; ``request_id`` when the line is about a request, and ``exception`` with the
traceback when one is attached. A stage sets the request id for everything logged while it
handles an event (:func:`request_context`, called by ``StageIO.handling`` with the event's key,
which is the request id on every line topic); tasks started meanwhile inherit it.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from contextvars import ContextVar
from datetime import UTC, datetime

#: The request the current task is working on, if any.
request_id_var: ContextVar[str | None] = ContextVar("assetline_request_id", default=None)


@contextlib.contextmanager
def request_context(request_id: str | None) -> Iterator[None]:
    """Log lines written inside (and in tasks started inside) carry ``request_id``."""
    token = request_id_var.set(request_id)
    try:
        yield
    finally:
        request_id_var.reset(token)


def request_id_of_key(key: object) -> str | None:
    """The request id of a line record's key (UTF-8 bytes), or None for anything else."""
    if isinstance(key, bytes | bytearray):
        try:
            text = bytes(key).decode("utf-8")
        except UnicodeDecodeError:
            return None
    elif isinstance(key, str):
        text = key
    else:
        return None
    return text if text and text.isprintable() and len(text) <= 256 else None


class JsonFormatter(logging.Formatter):
    """A log record as one line of JSON (never raises: a bad record still becomes a line)."""

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception as exc:  # a wrong %-format must not lose the line
            message = f"{record.msg!r} (unformattable: {exc})"
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": message,
        }
        request_id = getattr(record, "request_id", None) or request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def use_json_logs(logger: logging.Logger) -> None:
    """Every handler of ``logger`` (the root's, once the worker has set them up) writes JSON."""
    formatter = JsonFormatter()
    for handler in logger.handlers:
        handler.setFormatter(formatter)
