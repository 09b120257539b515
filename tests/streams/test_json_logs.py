"""streams.json_logs: one JSON object per line, with the request id of the current event."""

from __future__ import annotations

import asyncio
import json
import logging
import sys

import pytest

from streams.json_logs import JsonFormatter, request_context, request_id_of_key, request_id_var


def _record(msg: str, *args: object, exc_info: object = None, **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("assetline.test", logging.WARNING, __file__, 1, msg, args, exc_info)  # type: ignore[arg-type]
    record.created = 1_700_000_000.25
    for name, value in extra.items():
        setattr(record, name, value)
    return record


def test_a_line_has_time_level_logger_and_message() -> None:
    line = JsonFormatter().format(_record("%s took %.1f s", "généré", 2.5))
    assert "\n" not in line
    assert json.loads(line) == {
        "time": "2023-11-14T22:13:20.250+00:00",
        "level": "WARNING",
        "logger": "assetline.test",
        "message": "généré took 2.5 s",
    }


def test_request_id_comes_from_the_context_or_the_record() -> None:
    formatter = JsonFormatter()
    with request_context("req-1"):
        assert json.loads(formatter.format(_record("in")))["request_id"] == "req-1"
        extra = json.loads(formatter.format(_record("in", request_id="req-2")))
        assert extra["request_id"] == "req-2"
    assert "request_id" not in json.loads(formatter.format(_record("out")))


def test_tasks_started_inside_a_request_context_inherit_it() -> None:
    async def scenario() -> tuple[str | None, str | None]:
        with request_context("req-9"):
            inner = asyncio.create_task(asyncio.sleep(0, request_id_var.get()))
        return await inner, request_id_var.get()

    assert asyncio.run(scenario()) == ("req-9", None)


def test_exceptions_and_broken_formats_still_make_one_json_line() -> None:
    try:
        raise KeyError("boom")
    except KeyError:
        exc_info = sys.exc_info()
    entry = json.loads(JsonFormatter().format(_record("failed", exc_info=exc_info)))
    assert entry["message"] == "failed"
    assert "KeyError: 'boom'" in entry["exception"]
    broken = json.loads(JsonFormatter().format(_record("%d items", "many")))
    assert broken["message"].startswith("'%d items' (unformattable")


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (b"req-1", "req-1"),
        ("req-2", "req-2"),
        (b"\xff\xfe", None),
        (b"", None),
        (b"line\nbreak", None),
        (None, None),
        (42, None),
        (b"x" * 300, None),
    ],
)
def test_request_id_of_key(key: object, expected: str | None) -> None:
    assert request_id_of_key(key) == expected
