"""Dead-letter headers: keep the original headers, say what went wrong and where from."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pytest

from streams.blobs import LocalBlobStore
from streams.dead_letters import (
    HEADER_PREFIX,
    HEADERS_DROPPED,
    KEY_TRUNCATED,
    PARKED_MEDIA_TYPE,
    VALUE_PARKED,
    VALUE_SHA256,
    VALUE_SIZE,
    VALUE_TRUNCATED,
    DeadLetterRecord,
    dead_letter_record,
    deadletter_headers,
    fit_dead_letter,
    header_map,
    park_value,
    record_size,
)

NOW = datetime(2024, 5, 17, 9, 30, 15, 123456, tzinfo=UTC)


def headers(**overrides: object) -> list[tuple[str, bytes]]:
    args: dict[str, object] = {
        "stage": "validate",
        "code": "codec.malformed",
        "reason": "not Avro single-object encoding",
        "topic": "line.raw",
        "partition": 4,
        "offset": 1_234_567,
        "now": NOW,
    }
    args.update(overrides)
    return deadletter_headers(**args)  # type: ignore[arg-type]


def test_prefix() -> None:
    assert HEADER_PREFIX == "assetline.dlq."


def test_has_stage_code_reason_source_and_time() -> None:
    out = header_map(headers())
    assert out == {
        "assetline.dlq.stage": "validate",
        "assetline.dlq.error.code": "codec.malformed",
        "assetline.dlq.error.reason": "not Avro single-object encoding",
        "assetline.dlq.source.topic": "line.raw",
        "assetline.dlq.source.partition": "4",
        "assetline.dlq.source.offset": "1234567",
        "assetline.dlq.time": "2024-05-17T09:30:15.123+00:00",
    }


def test_values_are_utf8_bytes() -> None:
    result = headers(reason="Größe ✗")
    assert all(isinstance(k, str) and isinstance(v, bytes) for k, v in result)
    assert dict(result)["assetline.dlq.error.reason"] == "Größe ✗".encode()


def test_original_headers_are_kept_first_and_in_order() -> None:
    original = [("traceparent", b"00-abc-01"), ("x-tenant", b"acme"), ("x-tenant", b"dup")]
    result = headers(original=original)
    assert result[:3] == original
    assert len(result) == 3 + 7
    assert all(k.startswith(HEADER_PREFIX) for k, _ in result[3:])


def test_earlier_deadletter_headers_are_replaced_not_duplicated() -> None:
    first = headers(stage="generate", code="provider.crashed", offset=1)
    original = [("traceparent", b"t"), *first]
    second = headers(original=original, stage="deliver", code="blob.missing", offset=99)
    names = [k for k, _ in second]
    assert len(second) == 1 + 7
    assert names.count("traceparent") == 1
    dlq = [k for k in names if k.startswith(HEADER_PREFIX)]
    assert len(dlq) == len(set(dlq)) == 7
    out = header_map(second)
    assert out["assetline.dlq.stage"] == "deliver"
    assert out["assetline.dlq.error.code"] == "blob.missing"
    assert out["assetline.dlq.source.offset"] == "99"
    assert out["traceparent"] == "t"
    assert second[0] == ("traceparent", b"t")


def test_only_the_exact_prefix_is_replaced() -> None:
    original = [("assetline.trace", b"keep"), ("x-assetline.dlq.stage", b"keep too")]
    result = headers(original=original)
    assert result[:2] == original


def test_long_reasons_are_cut() -> None:
    out = header_map(headers(reason="x" * 10_000))
    assert out["assetline.dlq.error.reason"] == "x" * 2000


def test_time_is_converted_as_given_and_defaults_to_now() -> None:
    cest = timezone(timedelta(hours=2))
    aware = datetime(2024, 1, 1, 12, 0, 0, 999999, tzinfo=cest)
    assert header_map(headers(now=aware))["assetline.dlq.time"] == "2024-01-01T12:00:00.999+02:00"
    before = datetime.now(UTC)
    stamped = header_map(headers(now=None))["assetline.dlq.time"]
    after = datetime.now(UTC)
    parsed = datetime.fromisoformat(stamped)
    assert parsed.tzinfo is not None
    assert before - timedelta(milliseconds=1) <= parsed <= after


def test_header_map_last_one_wins_and_tolerates_none_and_bad_utf8() -> None:
    assert header_map(None) == {}
    assert header_map([]) == {}
    assert header_map([("a", b"1"), ("a", b"2")]) == {"a": "2"}
    assert header_map([("bin", b"\xff\xfeok")]) == {"bin": "\ufffd\ufffdok"}


# fit_dead_letter: a dead letter must always be writable (issue 12 #2)

LIMIT = 64 * 1024


def test_a_record_that_fits_is_left_alone() -> None:
    original = headers(original=[("trace", b"abc")])
    fitted = asyncio.run(fit_dead_letter(b"key", b"v" * 1000, original, limit=LIMIT, park=_no_park))
    assert fitted == DeadLetterRecord(b"key", b"v" * 1000, original)


async def _no_park(value: bytes) -> str:
    raise AssertionError("a record that fits must not be parked")


def test_a_value_over_the_limit_is_parked_and_the_headers_say_where() -> None:
    parked: list[bytes] = []

    async def park(value: bytes) -> str:
        parked.append(value)
        return "file:///blobs/ab/cd/abcd"

    value = b"x" * (LIMIT + 10)
    original = headers(original=[("t", b"1")])
    fitted = asyncio.run(fit_dead_letter(b"key", value, original, limit=LIMIT, park=park))
    assert parked == [value]
    assert fitted.value == b""
    assert fitted.key == b"key"
    read = header_map(fitted.headers)
    assert read[VALUE_PARKED] == "file:///blobs/ab/cd/abcd"
    assert read[VALUE_SIZE] == str(len(value))
    assert read[VALUE_SHA256] == hashlib.sha256(value).hexdigest()
    assert read["t"] == "1"  # original headers kept when they fit
    assert read[HEADER_PREFIX + "error.code"] == "codec.malformed"
    assert record_size(fitted.key, fitted.value, fitted.headers) <= LIMIT


def test_when_parking_fails_the_value_is_truncated_to_fit() -> None:
    async def park(value: bytes) -> str:
        raise OSError("disk full")

    value = bytes(range(256)) * 1000
    fitted = asyncio.run(fit_dead_letter(b"key", value, headers(), limit=LIMIT, park=park))
    assert 0 < len(fitted.value) < len(value)
    assert value.startswith(fitted.value)
    read = header_map(fitted.headers)
    assert read[VALUE_TRUNCATED] == str(len(value))
    assert VALUE_PARKED not in read
    assert LIMIT - 64 <= record_size(fitted.key, fitted.value, fitted.headers) <= LIMIT


def test_huge_original_headers_and_key_are_cut_but_ours_survive() -> None:
    hostile = [(f"h{i}", b"y" * 1000) for i in range(100)]  # ~100 KB of headers
    key = b"k" * (LIMIT + 1)
    fitted = asyncio.run(
        fit_dead_letter(key, b"v", headers(original=hostile), limit=LIMIT, park=None)
    )
    read = header_map(fitted.headers)
    assert read[HEADERS_DROPPED] == "100"
    assert read[KEY_TRUNCATED] == str(len(key))
    assert fitted.key == key[:256]
    assert read[HEADER_PREFIX + "error.code"] == "codec.malformed"
    assert record_size(fitted.key, fitted.value, fitted.headers) <= LIMIT


def test_record_size_is_what_the_producer_checks() -> None:
    """aiokafka refuses a send whose estimate exceeds max_request_size: same function."""
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    sample = [("a", b"b")]
    assert record_size(b"k", b"v" * 10, sample) == (
        DefaultRecordBatchBuilder.estimate_size_in_bytes(b"k", b"v" * 10, sample)
    )
    assert record_size(None, None, [("no-value", None)]) > 0  # type: ignore[list-item]


# dead_letter_record: the one builder StageIO and the notify stage share (issue 13 #4)


def _record(caplog: pytest.LogCaptureFixture, **overrides: Any) -> DeadLetterRecord:
    args: dict[str, Any] = {
        "stage": "notify",
        "code": "webhook.no_secret",
        "reason": "no secret 'x' in api_keys",
        "topic": "line.webhooks",
        "partition": 3,
        "offset": 42,
        "key": b"r-1",
        "value": b"job",
        "original": [("trace", b"abc")],
        "limit": LIMIT,
        "park": _no_park,
        "logger": logging.getLogger("caller"),
    }
    args.update(overrides)
    with caplog.at_level(logging.WARNING, logger="caller"):
        return asyncio.run(dead_letter_record(**args))


def test_dead_letter_record_logs_as_the_caller_and_carries_the_usual_headers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dead = _record(caplog)
    assert (dead.key, dead.value) == (b"r-1", b"job")
    (line,) = [r for r in caplog.records if r.name == "caller"]
    assert line.levelno == logging.WARNING
    assert line.getMessage() == (
        "notify: dead-lettering line.webhooks[3]@42: no secret 'x' in api_keys"
    )
    read = header_map(dead.headers)
    assert dead.headers[0] == ("trace", b"abc")  # the original headers first
    assert read[HEADER_PREFIX + "stage"] == "notify"
    assert read[HEADER_PREFIX + "error.code"] == "webhook.no_secret"
    assert read[HEADER_PREFIX + "source.topic"] == "line.webhooks"
    assert read[HEADER_PREFIX + "source.partition"] == "3"
    assert read[HEADER_PREFIX + "source.offset"] == "42"
    assert VALUE_SIZE not in read  # it fits: nothing was shrunk


def test_dead_letter_record_over_the_limit_parks_the_value_in_the_blob_store(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    blobs = LocalBlobStore(tmp_path)
    value = b"x" * (LIMIT + 1)
    dead = _record(caplog, value=value, park=lambda v: park_value(blobs, v))
    assert dead.value == b""
    read = header_map(dead.headers)
    parked = Path(unquote(urlparse(read[VALUE_PARKED]).path))
    assert parked.read_bytes() == value
    assert read[VALUE_SHA256] == hashlib.sha256(value).hexdigest()
    assert record_size(dead.key, dead.value, dead.headers) <= LIMIT
    assert PARKED_MEDIA_TYPE == "application/octet-stream"
