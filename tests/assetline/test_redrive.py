"""Reading dead letters back: headers, filters, the table, and where each is re-driven."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord
from pydantic import SecretStr

from assetline.redrive import (
    DeadLetter,
    Redriven,
    RedriveReport,
    from_record,
    parse_position,
    plan_one,
    report_lines,
    select,
    table,
    unparked,
    unparked_from,
)
from assetline.replay.rewrite import Rewriter
from schemas.records import GenerationRequest
from streams.blobs import LocalBlobStore, S3BlobConfig, S3BlobStore
from streams.codecs import Codecs
from streams.dead_letters import deadletter_headers, fit_dead_letter, park_value
from streams.topics import TopicNames
from tests.support.s3_server import ACCESS_KEY_ID, SECRET_ACCESS_KEY, moto_s3

NAMES = TopicNames.with_prefix("p")


def _record(
    partition: int,
    offset: int,
    value: bytes,
    *,
    code: str = "codec.malformed",
    source: str = "p.requests",
    minute: int = 0,
    key: bytes | None = b"r-1",
    headers: list[tuple[str, bytes]] | None = None,
) -> ConsumerRecord[bytes, bytes]:
    if headers is None:
        headers = deadletter_headers(
            stage="generate",
            code=code,
            reason="not Avro single-object encoding (expected C3 01, got 6e6f)",
            topic=source,
            partition=2,
            offset=17,
            original=[("traceparent", b"t")],
            now=datetime(2025, 1, 1, 0, minute, tzinfo=UTC),
        )
    return ConsumerRecord(
        "p.deadletter", partition, offset, 0, 0, key, value, None, 0, len(value), headers
    )


def _request(attempt: int = 1) -> GenerationRequest:
    return GenerationRequest(
        request_id="r-1",
        idempotency_key="r-1",
        tenant="acme",
        campaign_id="c",
        kind="TEXT",
        prompt_template="hi",
        attempt=attempt,
    )


def test_from_record_reads_the_headers_back() -> None:
    d = from_record(_record(1, 5, b"bad"))
    assert (d.partition, d.offset, d.stage, d.code) == (1, 5, "generate", "codec.malformed")
    assert d.time == "2025-01-01T00:00:00.000+00:00"
    assert d.source == "p.requests/2/17"
    assert d.reason.startswith("not Avro")
    assert (d.key, d.value) == (b"r-1", b"bad")


def test_a_message_without_dlq_headers_reads_as_empty() -> None:
    d = from_record(_record(0, 0, b"x", headers=[]))
    assert (d.code, d.source_topic, d.source_partition, d.source_offset) == ("", "", None, None)


def _letters() -> list[DeadLetter]:
    return [
        from_record(_record(0, 3, b"a", code="codec.malformed", minute=3)),
        from_record(_record(1, 3, b"b", code="deliver.sink_failed", minute=1)),
        from_record(_record(1, 4, b"c", code="codec.malformed", minute=2)),
    ]


def test_select_by_code_and_offset_oldest_first() -> None:
    letters = _letters()
    assert [d.value for d in select(letters)] == [b"b", b"c", b"a"]
    assert [d.value for d in select(letters, codes=["codec.malformed"])] == [b"c", b"a"]
    assert [d.value for d in select(letters, positions=[(None, 3)])] == [b"b", b"a"]
    assert [d.value for d in select(letters, positions=[(0, 3)])] == [b"a"]
    assert [d.value for d in select(letters, limit=1)] == [b"b"]
    assert select(letters, codes=["nope"]) == []


@pytest.mark.parametrize(
    ("text", "expected"), [("12", (None, 12)), ("2:12", (2, 12)), ("2@12", (2, 12))]
)
def test_parse_position(text: str, expected: tuple[int | None, int]) -> None:
    assert parse_position(text) == expected


@pytest.mark.parametrize("text", ["", "x", "1:", ":3", "a:3", "-1"])
def test_parse_position_refuses_junk(text: str) -> None:
    with pytest.raises(ValueError, match="OFFSET"):
        parse_position(text)


def test_table_has_one_row_per_letter_and_truncates_reasons() -> None:
    out = table(_letters(), reason_width=20).splitlines()
    assert out[0].split() == ["offset", "time", "stage", "code", "key", "reason", "source"]
    assert len(out) == 4
    for cell in ("0:3", "codec.malformed", "r-1", "p.requests/2/17"):
        assert cell in out[1]
    assert "not Avro single-obj…" in out[1]
    assert "(expected" not in out[1]


def test_table_shows_the_record_key_even_without_one_or_with_control_characters() -> None:
    letters = [
        from_record(_record(0, 1, b"a", key=None)),
        from_record(_record(0, 2, b"b", key=b"evil\nkey")),
    ]
    out = table(letters).splitlines()
    assert len(out) == 3  # a newline in a key does not break the table
    assert out[1].split()[4] == "-"
    assert "evil\\nkey" in out[2]


def test_plan_a_valid_request_as_a_new_attempt_to_its_source() -> None:
    codecs = Codecs.load()
    letter = from_record(_record(0, 0, codecs.request.encode(_request())))
    item, value = plan_one(letter, NAMES, Rewriter(codecs), None, None)
    assert (item.outcome, item.target, item.request_id, item.attempt) == (
        "redriven",
        "p.requests",
        "r-1",
        1001,
    )
    assert value is not None
    assert codecs.request.decode(value).attempt == 1001
    # The same dead letter planned again gets the same attempt: the ledger keeps one completion.
    again, _ = plan_one(letter, NAMES, Rewriter(codecs), None, None)
    assert again.attempt == 1001


def test_a_dead_letter_of_the_urgent_topic_is_redriven_to_it() -> None:
    """A HIGH request dead-lettered from .requests.urgent goes back to its own intake, as a
    new attempt (not verbatim: the urgent topic holds requests too)."""
    codecs = Codecs.load()
    value = codecs.request.encode(_request())
    letter = from_record(_record(0, 0, value, source="p.requests.urgent"))
    item, out = plan_one(letter, NAMES, Rewriter(codecs), None, None)
    assert (item.outcome, item.target, item.attempt) == ("redriven", "p.requests.urgent", 1001)
    assert out is not None
    assert codecs.request.decode(out).attempt == 1001


def test_plan_skips_what_still_does_not_decode_and_what_has_no_source() -> None:
    rewriter = Rewriter(Codecs.load())
    item, value = plan_one(from_record(_record(0, 0, b"bad")), NAMES, rewriter, None, None)
    assert (item.outcome, value) == ("undecodable", None)
    bare = from_record(_record(0, 1, b"x", headers=[]))
    item, value = plan_one(bare, NAMES, rewriter, None, None)
    assert (item.outcome, item.target, value) == ("no-source", None, None)


def test_plan_sends_other_topics_verbatim_and_honours_into() -> None:
    rewriter = Rewriter(Codecs.load())
    letter = from_record(_record(0, 0, b"decision", source="p.review.decisions"))
    item, value = plan_one(letter, NAMES, rewriter, None, None)
    assert (item.outcome, item.target, value) == ("verbatim", "p.review.decisions", b"decision")
    item, _ = plan_one(letter, NAMES, rewriter, "scratch", None)
    assert item.target == "scratch"


def test_a_redriven_request_carries_the_line_mark_generate_accepts() -> None:
    from agents.tenants import Gatekeeper

    codecs = Codecs.load()
    gate = Gatekeeper(b"line")
    letter = from_record(_record(0, 0, codecs.request.encode(_request()), code="generate.crashed"))
    item, value = plan_one(letter, NAMES, Rewriter(codecs), None, None, gate)
    assert item.outcome == "redriven"
    assert value is not None
    request = codecs.request.decode(value)
    assert request.attempt == 1001
    assert gate.authenticity(request, value, list(item.marks)) is None
    # Without the mark generate would refuse the re-driven attempt as forged.
    assert gate.authenticity(request, value, []) is not None


def test_a_forged_attempt_is_never_redriven_with_the_lines_mark() -> None:
    """Else ``dlq replay`` would launder a squatter's attempt=50 into an accepted 1050."""
    from agents.tenants import ATTEMPT_FORGED, Gatekeeper

    codecs = Codecs.load()
    gate = Gatekeeper(b"line")
    forged = codecs.request.encode(_request(attempt=50))
    letter = from_record(_record(0, 0, forged, code=ATTEMPT_FORGED))
    item, value = plan_one(letter, NAMES, Rewriter(codecs), None, None, gate)
    assert (item.outcome, value, item.marks) == ("refused", None, ())
    # A genuine re-generation that was parked keeps its original mark and is re-driven.
    genuine = _record(
        0,
        1,
        forged,
        headers=deadletter_headers(
            stage="generate",
            code="generate.crashed",
            reason="boom",
            topic="p.requests",
            partition=0,
            offset=3,
            original=[gate.mark(forged)],
        ),
    )
    item, value = plan_one(from_record(genuine), NAMES, Rewriter(codecs), None, None, gate)
    assert item.outcome == "redriven"
    assert item.attempt == 1050
    assert value is not None


def _parked_letter(tmp_path: Path, value: bytes) -> DeadLetter:
    """A dead letter whose too-large value the stage parked in its blob store."""
    ref = LocalBlobStore(tmp_path / "blobs").put(value, "application/octet-stream")
    original = deadletter_headers(
        stage="generate",
        code="request.too_large",
        reason="value is 300000 bytes, over the limit of 262144",
        topic="p.requests",
        partition=0,
        offset=3,
    )

    async def parked(value: bytes) -> str:
        return ref.uri

    fitted = asyncio.run(fit_dead_letter(b"r-1", value, original, limit=1000, park=parked))
    assert fitted.value == b""
    record = ConsumerRecord(
        "p.deadletter", 0, 9, 0, 0, fitted.key, fitted.value, None, 0, 0, fitted.headers
    )
    return from_record(record)


def test_a_parked_value_is_read_back_for_a_redrive(tmp_path: Path) -> None:
    """Issue 12 #2: a dead letter too large to travel keeps its value in the blob store."""
    long = _request().model_copy(update={"prompt_template": "hi " * 1000})
    value = Codecs.load().request.encode(long)  # over the 1,000-byte limit below
    letter = _parked_letter(tmp_path, value)
    restored = unparked(letter)
    assert restored is not None
    assert restored.value == value
    item, out = plan_one(restored, NAMES, Rewriter(Codecs.load()), None, None)
    assert item.outcome == "redriven"
    assert out is not None
    assert unparked(from_record(_record(0, 1, b"plain"))) is not None  # nothing parked


def test_a_value_parked_in_the_s3_blob_store_is_read_back_through_it() -> None:
    """Workers on several hosts park in the shared S3 store; the operator reads it back."""
    long = _request().model_copy(update={"prompt_template": "hi " * 1000})
    value = Codecs.load().request.encode(long)
    bucket = f"parked-{uuid.uuid4().hex[:10]}"
    with moto_s3(bucket) as (endpoint, admin):
        store = S3BlobStore(
            S3BlobConfig(
                endpoint_url=endpoint,
                bucket=bucket,
                access_key_id=ACCESS_KEY_ID,
                secret_access_key=SecretStr(SECRET_ACCESS_KEY),
            )
        )
        original = deadletter_headers(
            stage="generate", code="request.too_large", reason="big", topic="p.requests",
            partition=0, offset=3,
        )  # fmt: skip
        fitted = asyncio.run(fit_dead_letter(b"r-1", value, original, limit=1000, park=park(store)))
        asyncio.run(store.aclose())  # its async client belongs to that loop
        record = ConsumerRecord(
            "p.deadletter", 0, 9, 0, 0, fitted.key, fitted.value, None, 0, 0, fitted.headers
        )
        letter = from_record(record)
        assert unparked(letter) is None  # not a file here
        assert asyncio.run(unparked_from(letter, None)) is None
        restored = asyncio.run(unparked_from(letter, S3BlobStore(store.config, cache_bytes=0)))
        assert restored is not None
        assert restored.value == value
        key = store.config.key_for(hashlib.sha256(value).hexdigest())
        admin.put_object(Bucket=bucket, Key=key, Body=b"x" * len(value))  # tampered
        assert asyncio.run(unparked_from(letter, S3BlobStore(store.config, cache_bytes=0))) is None


def park(store: S3BlobStore) -> Callable[[bytes], Awaitable[str]]:
    return lambda value: park_value(store, value)


def test_a_parked_value_that_cannot_be_read_or_does_not_match_is_not_used(
    tmp_path: Path,
) -> None:
    letter = _parked_letter(tmp_path, b"v" * 5000)
    path = next(p for p in (tmp_path / "blobs").rglob("*") if p.is_file())
    path.chmod(0o644)
    path.write_bytes(b"tampered")
    assert unparked(letter) is None
    path.unlink()
    assert unparked(letter) is None


def test_report_lines_say_where_each_went_or_why_not() -> None:
    letter = from_record(_record(1, 7, b"x"))
    report = RedriveReport("rid", dry_run=False)
    report.items += [
        Redriven(letter, "p.requests", "redriven", request_id="r-1", attempt=1002),
        Redriven(letter, "p.review.decisions", "verbatim"),
        Redriven(letter, "p.requests", "undecodable"),
        Redriven(letter, "p.requests", "parked"),
        Redriven(letter, "p.requests", "refused", request_id="r-1"),
        Redriven(letter, None, "no-source"),
    ]
    assert report_lines(report) == [
        "1:7 (codec.malformed) -> p.requests request r-1 attempt 1002",
        "1:7 (codec.malformed) -> p.review.decisions as is (no request to re-attempt)",
        "1:7 (codec.malformed) skipped: still not a valid record for p.requests",
        "1:7 (codec.malformed) skipped: its value was parked in a blob store not readable "
        "here (run on the worker's host)",
        "1:7 (codec.malformed) skipped: request r-1 is not admissible (forged attempt or "
        "unsigned); the producer must send it again",
        "1:7 (codec.malformed) skipped: no source topic in its headers (use --into)",
    ]


def test_a_dead_letter_of_a_deferred_delivery_goes_back_where_it_was_deferred_from() -> None:
    """The deliver stage dead-letters a deferred delivery that failed with its source topic
    ``.deliver.deferred``; re-driven there verbatim, the same attempt would find its FAILED
    completion and do nothing. It goes to ``.approved`` (the deferral's source header) as a
    new attempt instead; without that header it has no source."""
    from agents.deliver.deferral import deferred_headers
    from tests.support.assets import make_request, make_validated, passed

    codecs = Codecs.load()
    value = codecs.validated.encode(
        make_validated([passed("schema")], request=make_request(request_id="r-1"))
    )
    original = deferred_headers(
        [("traceparent", b"t")], source="p.approved", destination="dam", due_ms=1, count=3
    )

    def letter(original: list[tuple[str, bytes]]) -> DeadLetter:
        headers = deadletter_headers(
            stage="deliver",
            code="deliver.sink_failed",
            reason="dam: 503",
            topic="p.deliver.deferred",
            partition=2,
            offset=17,
            original=original,
            now=datetime(2025, 1, 1, tzinfo=UTC),
        )
        return from_record(_record(0, 0, value, headers=headers))

    item, out = plan_one(letter(original), NAMES, Rewriter(codecs), None, None)
    assert (item.outcome, item.target, item.attempt) == ("redriven", "p.approved", 1001)
    assert out is not None
    item, out = plan_one(letter([("traceparent", b"t")]), NAMES, Rewriter(codecs), None, None)
    assert (item.outcome, out) == ("no-source", None)
